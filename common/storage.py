"""S3 artifacts of a run: URIs, bytes, JSON and Parquet objects, with S3 failures named.

The stages hand data to each other through S3 objects under the run's ``artifacts_prefix``. S3's
own failures become the pipeline's named errors so that the state machine retries only what may
pass: throttling, 5xx and dropped connections raise ``StorageUnavailable`` (transient); a missing
object raises ``ArtifactMissing``, an object that is not what it should be ``ArtifactCorrupt``,
and a missing bucket or a denied access (a deployment fault no retry fixes) ``ConfigurationError``.
The S3 client is built once per container. boto3 and pyarrow are imported where they are used:
a stage that only reads JSON never loads pyarrow, and the S3 client's imports come with the client.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from common.errors import (
    ArtifactCorrupt,
    ArtifactMissing,
    ConfigurationError,
    InvalidInput,
    StorageUnavailable,
)

if TYPE_CHECKING:
    import pyarrow as pa

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CONFIG_CODES = frozenset(
    {"NoSuchBucket", "AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId"}
)
PARQUET_COMPRESSION = "zstd"


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, *parts: str) -> S3Uri:
        """The object ``parts`` below this prefix (which ends with ``/``)."""
        return S3Uri(self.bucket, self.key + "/".join(parts))


def parse_s3_uri(uri: Any, field: str = "uri") -> S3Uri:
    """``s3://bucket/key`` -> S3Uri; anything else raises InvalidInput naming ``field``."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidInput(f"{field}: expected an s3://bucket/key URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or not key:
        raise InvalidInput(f"{field}: {uri[:120]!r} is not an s3://bucket/key URI")
    return S3Uri(bucket, key)


@functools.cache
def s3_client() -> Any:
    """The container's S3 client (created on first use, reused by every invocation)."""
    import boto3
    from botocore.config import Config

    # botocore already retries these a few times (standard mode); what still fails reaches the
    # state machine as StorageUnavailable and is retried there with a longer backoff.
    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60
    )
    return boto3.client("s3", config=config)


def _storage_error(exc: Exception, uri: S3Uri, action: str) -> Exception:
    """Map a botocore failure on ``uri`` to the pipeline's named error."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _MISSING_CODES:
            return ArtifactMissing(
                f"{uri}: no such object (an earlier stage should have written it)"
            )
        if code in _CONFIG_CODES:
            return ConfigurationError(f"{uri}: S3 refused to {action} ({code})")
        if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError"):
            return StorageUnavailable(f"{uri}: S3 could not {action} ({code or status})")
        return ConfigurationError(f"{uri}: S3 refused to {action} ({code or status})")
    return StorageUnavailable(f"{uri}: S3 did not answer ({type(exc).__name__})")


def put_bytes(
    uri: S3Uri, data: bytes | pa.Buffer, content_type: str = "application/octet-stream"
) -> None:
    """Write an object; an Arrow buffer is streamed from where it is, not copied into bytes.

    The CRC32 that S3 checks on arrival is computed here, in one pass of zlib. Left to botocore,
    a streamed body goes aws-chunked with a trailing checksum, and its chunk wrapper re-slices its
    buffer on every read: 4.4 s of client time for fetch/5M's 122 MB object, plus 4.2 s for moto
    to decode the chunks locally, against 0.7 s for the whole put this way.
    """
    body: Any = data
    if not isinstance(data, bytes):
        import pyarrow as pa

        body = pa.BufferReader(data)
    checksum = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")
    try:
        s3_client().put_object(
            Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type,
            ChecksumCRC32=checksum,
        )  # fmt: skip
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error(exc, uri, "write") from None


def get_bytes(uri: S3Uri) -> bytes:
    try:
        response = s3_client().get_object(Bucket=uri.bucket, Key=uri.key)
        return bytes(response["Body"].read())
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error(exc, uri, "read") from None


def parquet_bytes(table: pa.Table) -> bytes:
    """Serialize a table the same way every time (same table -> same bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return bytes(sink.getvalue())


def put_parquet(uri: S3Uri, table: pa.Table) -> None:
    put_bytes(uri, parquet_bytes(table), "application/vnd.apache.parquet")


def read_parquet(data: bytes, uri: S3Uri, columns: list[str] | None = None) -> pa.Table:
    """Parse Parquet bytes read from ``uri``; unreadable data or missing columns -> ArtifactCorrupt.

    ``ParquetFile``, not ``pq.read_table``: the latter goes through ``pyarrow.dataset``, whose
    import alone is ~45 ms of a rank Lambda's cold start. It does not refuse a column the file
    lacks, so that is checked here.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        missing = sorted(set(columns or ()) - set(parquet.schema_arrow.names))
        if missing:
            raise ArtifactCorrupt(f"{uri}: no column {', '.join(missing)} in the Parquet object")
        table = parquet.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactCorrupt(f"{uri}: not a readable Parquet object ({first_line})") from None
    return table


def get_parquet(uri: S3Uri, columns: list[str] | None = None) -> pa.Table:
    return read_parquet(get_bytes(uri), uri, columns)


def json_bytes(document: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, so equal documents give identical objects."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def put_json(uri: S3Uri, document: Any) -> None:
    put_bytes(uri, json_bytes(document), "application/json")


def get_json(uri: S3Uri) -> Any:
    data = get_bytes(uri)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactCorrupt(f"{uri}: not a JSON document") from None
