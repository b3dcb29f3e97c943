"""Step Functions from the inside: execution history, starting and listing executions, failure reports."""
