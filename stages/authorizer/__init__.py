"""The admin endpoint's API Gateway authorizer Lambda function."""
