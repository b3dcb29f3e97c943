"""Shared domain code of the BixArena leaderboard pipeline: contracts, ranking, database and S3 access."""
