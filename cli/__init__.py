"""The ``leaderboard`` command line and what it prints; never in the Lambda image."""
