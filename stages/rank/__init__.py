"""The rank Lambda function."""
