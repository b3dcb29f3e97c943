"""S3 artifacts of a run: URIs, bytes, JSON and Parquet objects, with S3 failures named.

The stages hand data to each other through S3 objects under the run's ``artifacts_prefix``. S3's
own failures become the pipeline's named errors so that the state machine retries only what may
pass: throttling, 5xx and dropped connections raise ``StorageUnavailable`` (transient); a missing
object raises ``ArtifactMissing``, an object that is not what it should be ``ArtifactCorrupt``,
and a missing bucket or a denied access (a deployment fault no retry fixes) ``ConfigurationError``.
The S3 client is built once per container. botocore and pyarrow are imported where they are used:
a stage that only reads JSON never loads pyarrow, and the S3 client's imports come with the client.

An object too large to hold twice is written as it is made (``streamed``): a multipart upload
whose parts leave while the next one fills, completed only when the writer finished; on any
failure the upload is aborted, so a reader sees the whole object or the one before it, never a part.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
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
PARQUET_TYPE = "application/vnd.apache.parquet"
PART_BYTES = 8 << 20
"""A streamed object's part size: S3's least is 5 MiB (but for the last part); two parts at most
are held at once, the one leaving and the one filling."""


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
    """The container's S3 client (created on first use, reused by every invocation).

    Made by botocore itself: boto3's client is the same one, but importing boto3 brings
    s3transfer along, ~40 ms of a rank Lambda's cold start for nothing the stages call."""
    import botocore.session
    from botocore.config import Config

    # botocore already retries these a few times (standard mode); what still fails reaches the
    # state machine as StorageUnavailable and is retried there with a longer backoff.
    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60
    )
    return botocore.session.get_session().create_client("s3", config=config)


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
    try:
        s3_client().put_object(
            Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type,
            ChecksumCRC32=_crc32(data),
        )  # fmt: skip
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error(exc, uri, "write") from None


def _crc32(data: bytes | pa.Buffer) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


class ObjectStream:
    """A write-only file whose bytes become the object at ``uri`` (``streamed`` makes one).

    Up to PART_BYTES it only buffers, and an object that ends there is one ``put_bytes``. Beyond,
    it opens a multipart upload and sends each full buffer as a part from a thread of its own while
    the writer fills the next; each part carries its CRC32, as ``put_bytes``'s body does."""

    def __init__(self, uri: S3Uri, content_type: str) -> None:
        self.uri = uri
        self.content_type = content_type
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._written = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sending: Future[dict[str, Any]] | None = None
        self._sender: ThreadPoolExecutor | None = None
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError(f"{self.uri}: written after it was finished or aborted")
        self._pending.append(bytes(data))  # a copy only if the writer may reuse what it passed
        self._pending_bytes += len(data)
        self._written += len(data)
        if self._pending_bytes >= PART_BYTES:
            self._send()
        return len(data)

    def tell(self) -> int:
        return self._written

    def writable(self) -> bool:
        return True

    def finish(self) -> None:
        """Make the object: what was written, whole."""
        self.closed = True
        if self._upload_id is None:
            put_bytes(self.uri, self._take(), self.content_type)
            return
        if self._pending:
            self._send()
        self._wait()
        self._call(
            "complete_multipart_upload",
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._close_sender()

    def abort(self) -> None:
        """Drop what was sent: no object is made (an earlier one under the key stays)."""
        self.closed = True
        self._pending.clear()
        if self._sending is not None:
            self._sending.exception()  # let it end; its failure is not the one to report
            self._sending = None
        self._close_sender()
        if self._upload_id is not None:
            # Best effort: the bucket's lifecycle aborts what this could not after a day.
            with suppress(StorageUnavailable, ConfigurationError, ArtifactMissing):
                self._call("abort_multipart_upload", UploadId=self._upload_id)

    def _take(self) -> bytes:
        """What was written since the last part, joined, and no longer held in pieces."""
        part = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return part

    def _send(self) -> None:
        if self._upload_id is None:
            created = self._call(
                "create_multipart_upload", ContentType=self.content_type, ChecksumAlgorithm="CRC32"
            )
            self._upload_id = created["UploadId"]
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        # The part before is sent (and let go) before this one is joined: two parts' bytes at
        # most are held, this one's pieces and their join.
        self._wait()
        assert self._sender is not None
        self._sending = self._sender.submit(self._upload_part, len(self._parts) + 1, self._take())

    def _upload_part(self, number: int, part: bytes) -> dict[str, Any]:
        checksum = _crc32(part)
        sent = self._call(
            "upload_part", UploadId=self._upload_id, PartNumber=number, Body=part,
            ChecksumCRC32=checksum,
        )  # fmt: skip
        return {"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32": checksum}

    def _wait(self) -> None:
        if self._sending is not None:
            sending, self._sending = self._sending, None
            self._parts.append(sending.result())

    def _close_sender(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(s3_client(), operation)(
                Bucket=self.uri.bucket, Key=self.uri.key, **kwargs
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc, self.uri, "write") from None


@contextmanager
def streamed(uri: S3Uri, content_type: str = "application/octet-stream") -> Iterator[ObjectStream]:
    """A file to write the object at ``uri`` into, part by part. The object is made (replacing
    one under the key) when the block ends without an exception; if it raises, nothing changes
    and no part is left behind."""
    stream = ObjectStream(uri, content_type)
    try:
        yield stream
        stream.finish()
    except BaseException:
        stream.abort()
        raise


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
    put_bytes(uri, parquet_bytes(table), PARQUET_TYPE)


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
        names = parquet.schema_arrow.names
        missing = sorted(set(columns or ()) - set(names))
        if missing:
            raise ArtifactCorrupt(f"{uri}: no column {', '.join(missing)} in the Parquet object")
        twice = sorted({n for n in (columns or names) if names.count(n) > 1})
        if twice:
            raise ArtifactCorrupt(f"{uri}: column {', '.join(twice)} appears more than once")
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
