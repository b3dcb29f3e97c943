"""The local run: the deployed state machine on this machine (moto, embedded PostgreSQL), never in the Lambda image."""
