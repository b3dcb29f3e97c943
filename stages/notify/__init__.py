"""The notify Lambda function."""
