"""Named errors of the pipeline.

The class name is the Lambda ``errorType`` that the state machine's Retry policies match, so these
names are part of the deployed contract: renaming one changes what is retried.
Transient errors are retried with backoff; permanent ones stop the execution at the failing stage.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    transient = False


class TransientError(PipelineError):
    """A failure that may pass on its own: worth retrying."""

    transient = True


class PermanentError(PipelineError):
    """A failure that the same input will always meet: never retried."""


# --- transient ---------------------------------------------------------------------------------
class DatabaseUnavailable(TransientError):
    """PostgreSQL refused or dropped the connection, or timed out."""


class StorageUnavailable(TransientError):
    """S3 throttled or failed with a server-side error."""


class SlackUnavailable(TransientError):
    """Slack answered 429 or 5xx, or did not answer in time."""


class SecretUnavailable(TransientError):
    """Secrets Manager could not be reached."""


class TopicUnavailable(TransientError):
    """SNS throttled, failed with a server-side error, or could not be reached."""


class StepFunctionsUnavailable(TransientError):
    """Step Functions' API (DescribeExecution) throttled, failed on its side, or did not answer."""


# --- permanent ---------------------------------------------------------------------------------
class InvalidInput(PermanentError):
    """An event, request or file does not follow its contract."""


class LeaderboardNotFound(PermanentError):
    """A requested leaderboard slug does not exist."""


class ArtifactMissing(PermanentError):
    """An S3 object that an earlier stage should have written is not there."""


class ArtifactCorrupt(PermanentError):
    """An S3 object exists but cannot be read as what it should be."""


class NotEnoughData(PermanentError):
    """Too few votes or models to rank."""


class SnapshotNotFound(PermanentError):
    """An operator named a snapshot that does not exist."""


class ConfigurationError(PermanentError):
    """The function's environment or a secret is missing or malformed."""


class SlackRejected(PermanentError):
    """Slack refused the message for good (4xx other than 429), e.g. a revoked webhook."""


TRANSIENT_ERRORS: tuple[str, ...] = (
    "DatabaseUnavailable",
    "StorageUnavailable",
    "SlackUnavailable",
    "SecretUnavailable",
    "TopicUnavailable",
    "StepFunctionsUnavailable",
)
"""Error names the state machine retries; infra/ builds its Retry policies from this tuple."""
