"""The fetch Lambda function."""
