"""The publish Lambda function."""
