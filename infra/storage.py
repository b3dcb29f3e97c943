"""The S3 bucket of run artifacts (Parquet votes, ranked entries) and its access-log bucket.

Versioning is off on purpose: every object is derived from the database by an idempotent stage
and rewritten under the same key by a retry or a redrive, so older versions hold nothing worth
keeping, and versioning would keep every overwritten copy beyond the lifecycle expiry. The durable
record of a run is the snapshot in PostgreSQL. Objects under ``runs/`` expire after
``artifactExpiryDays`` (default 30), long enough to debug or redrive a recent run.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import StackConfig
from infra.nag import acknowledge

ARTIFACTS_PREFIX = "runs/"
ACCESS_LOG_EXPIRY_DAYS = 365


@dataclass(frozen=True)
class Storage:
    artifacts: s3.Bucket
    access_logs: s3.Bucket


def _private_bucket(scope: Construct, construct_id: str, **kwargs: object) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=False,
        **kwargs,  # type: ignore[arg-type]
    )


def build_storage(scope: Construct, config: StackConfig) -> Storage:
    access_logs = _private_bucket(
        scope,
        "AccessLogsBucket",
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_EXPIRY_DAYS)
            )
        ],
    )
    acknowledge(
        access_logs,
        "AwsSolutions-S1",
        "This bucket is the destination of the artifacts bucket's server access logs; "
        "logging it into another bucket would only move the same finding there.",
    )
    artifacts = _private_bucket(
        scope,
        "ArtifactsBucket",
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix="artifacts/",
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-run-artifacts",
                prefix=ARTIFACTS_PREFIX,
                expiration=Duration.days(config.artifact_expiry_days),
            ),
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
        ],
    )
    return Storage(artifacts=artifacts, access_logs=access_logs)
