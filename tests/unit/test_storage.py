"""S3 artifacts: URIs, round trips, and S3's failures mapped to the pipeline's named errors."""

from __future__ import annotations

import base64
import itertools
import zlib
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from common import storage
from common.errors import (
    ArtifactCorrupt,
    ArtifactMissing,
    ConfigurationError,
    InvalidInput,
    StorageUnavailable,
)
from tests.stage_fixtures import BUCKET, put_object, s3_requests

URI = storage.S3Uri(BUCKET, "runs/r1/overall/votes.parquet")


def test_uris() -> None:
    parsed = storage.parse_s3_uri(f"s3://{BUCKET}/runs/r1/")
    assert parsed == storage.S3Uri(BUCKET, "runs/r1/")
    assert (
        str(parsed.child("overall", "votes.parquet"))
        == f"s3://{BUCKET}/runs/r1/overall/votes.parquet"
    )


@pytest.mark.parametrize(
    "uri", [None, "", "https://bucket/key", "s3://", "s3://bucket", "s3://bucket/", "s3://B_ad/key"]
)
def test_bad_uris_name_the_field(uri: Any) -> None:
    with pytest.raises(InvalidInput, match=r"^votes_uri: "):
        storage.parse_s3_uri(uri, "votes_uri")


def test_round_trips(stage_aws: Any) -> None:
    storage.put_bytes(URI, b"\x00raw")
    assert storage.get_bytes(URI) == b"\x00raw"
    storage.put_bytes(URI, pa.py_buffer(b"arrow buffer, streamed"))
    assert storage.get_bytes(URI) == b"arrow buffer, streamed"
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    storage.put_parquet(URI, table)
    assert storage.get_parquet(URI).equals(table)
    assert storage.get_parquet(URI, columns=["b"]).column_names == ["b"]
    storage.put_json(URI, {"b": [1.5], "a": None})
    assert storage.get_bytes(URI) == b'{"a":null,"b":[1.5]}'
    assert storage.get_json(URI) == {"a": None, "b": [1.5]}


def _headers(request: Any) -> dict[str, str]:
    return {
        k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
    }


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("wrap", [bytes, pa.py_buffer])
def test_puts_carry_their_own_crc32_and_a_plain_body(stage_aws: Any, wrap: Any) -> None:
    """The CRC32 S3 checks is computed by us (zlib), so botocore neither chunks the body
    (aws-chunked) nor adds a trailing checksum of its own."""
    data = bytes(range(256)) * 4096
    with s3_requests(["PutObject"]) as sent:
        storage.put_bytes(URI, wrap(data))
    headers = _headers(sent[0])
    assert headers["x-amz-checksum-crc32"] == _crc32(data)
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert "x-amz-trailer" not in headers
    assert storage.get_bytes(URI) == data


def test_same_table_same_bytes() -> None:
    table = pa.table({"id": pa.array(["m1", "m2", "m1"]).dictionary_encode(), "n": [1, 2, 3]})
    assert storage.parquet_bytes(table) == storage.parquet_bytes(table.slice(0))


def test_missing_object_and_bucket(stage_aws: Any) -> None:
    with pytest.raises(ArtifactMissing, match="no such object"):
        storage.get_bytes(URI)
    elsewhere = storage.S3Uri("no-such-bucket-here", "k")
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        storage.get_bytes(elsewhere)
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        storage.put_bytes(elsewhere, b"x")


def test_corrupt_objects(stage_aws: Any) -> None:
    put_object(stage_aws, str(URI), b"PAR1 not really")
    with pytest.raises(ArtifactCorrupt, match="not a readable Parquet object"):
        storage.get_parquet(URI)
    with pytest.raises(ArtifactCorrupt, match="not a JSON document"):
        storage.get_json(URI)
    storage.put_parquet(URI, pa.table({"a": [1]}))
    with pytest.raises(ArtifactCorrupt, match="no column missing in the Parquet object"):
        storage.get_parquet(URI, columns=["missing"])
    storage.put_parquet(URI, pa.table([pa.array([1]), pa.array([2])], names=["id", "id"]))
    with pytest.raises(ArtifactCorrupt, match="column id appears more than once"):
        storage.get_parquet(URI)


@pytest.mark.parametrize(
    ("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("RequestTimeout", 400)]
)
def test_throttling_and_server_errors_are_transient(stage_aws: Any, code: str, status: int) -> None:
    with Stubber(storage.s3_client()) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(StorageUnavailable, match=code):
            storage.put_bytes(URI, b"x")
        with pytest.raises(StorageUnavailable, match=code):
            storage.get_bytes(URI)


def test_access_denied_is_configuration(stage_aws: Any) -> None:
    with Stubber(storage.s3_client()) as stub:
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ConfigurationError, match="AccessDenied"):
            storage.put_bytes(URI, b"x")


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"),
        ClientError(
            {
                "Error": {"Code": "Weird"},
                "ResponseMetadata": {
                    "HTTPStatusCode": 502,
                    "RequestId": "r",
                    "HostId": "h",
                    "HTTPHeaders": {},
                    "RetryAttempts": 0,
                },
            },
            "Get",
        ),
    ],
)
def test_connection_failures_are_transient(exc: Exception) -> None:
    assert isinstance(storage._storage_error(exc, URI, "read"), StorageUnavailable)


def test_a_streamed_object_within_one_part_is_one_put(stage_aws: Any) -> None:
    with (
        s3_requests(["PutObject", "CreateMultipartUpload"]) as sent,
        storage.streamed(URI, "application/x-test") as sink,
    ):
        sink.write(b"small ")
        sink.write(b"object")
        assert sink.tell() == 12
    assert [r.method for r in sent] == ["PUT"]
    assert _headers(sent[0])["x-amz-checksum-crc32"] == _crc32(b"small object")
    assert storage.get_bytes(URI) == b"small object"
    head = stage_aws.head_object(Bucket=BUCKET, Key=URI.key)
    assert head["ContentType"] == "application/x-test"


def test_a_large_streamed_object_goes_in_checksummed_parts(stage_aws: Any) -> None:
    """Past PART_BYTES the object is a multipart upload (moto holds parts to S3's 5 MiB least):
    every part carries its CRC32, the completion lists them, and the object is what was written,
    in writes of any size."""
    data = bytes(range(251)) * (5 * storage.PART_BYTES // 2 // 251)
    with (
        s3_requests(["UploadPart", "CompleteMultipartUpload"]) as sent,
        storage.streamed(URI, storage.PARQUET_TYPE) as sink,
    ):
        for start in range(0, len(data), 1_000_003):
            sink.write(data[start : start + 1_000_003])
    *parts, completion = sent
    sizes = [int(_headers(p)["content-length"]) for p in parts]
    assert len(sizes) == 3 and sum(sizes) == len(data)
    assert min(sizes[:-1]) >= storage.PART_BYTES
    ends = list(itertools.accumulate(sizes))
    assert [_headers(p)["x-amz-checksum-crc32"] for p in parts] == [
        _crc32(data[end - size : end]) for size, end in zip(sizes, ends, strict=True)
    ]
    listed = bytes(completion.body).decode()
    assert all(f"<ChecksumCRC32>{_headers(p)['x-amz-checksum-crc32']}<" in listed for p in parts)
    assert storage.get_bytes(URI) == data
    head = stage_aws.head_object(Bucket=BUCKET, Key=URI.key)
    assert head["ContentType"] == storage.PARQUET_TYPE
    assert not stage_aws.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_failed_writer_leaves_no_object_and_no_upload(stage_aws: Any) -> None:
    """Nothing half-written: an exception in the block aborts the upload, and the object written
    before under the same key stays as it was."""
    storage.put_bytes(URI, b"the run before")
    with pytest.raises(RuntimeError, match="encoder broke"), storage.streamed(URI) as sink:
        sink.write(b"x" * (storage.PART_BYTES + 1))
        raise RuntimeError("encoder broke")
    assert storage.get_bytes(URI) == b"the run before"
    assert not stage_aws.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    with pytest.raises(ValueError, match="written after it was finished or aborted"):
        sink.write(b"late")


def test_a_part_s3_does_not_take_is_transient_and_aborts_the_upload(stage_aws: Any) -> None:
    client = storage.s3_client()

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    client.meta.events.register("before-call.s3.UploadPart", unreachable)
    try:
        with (
            pytest.raises(StorageUnavailable, match="S3 did not answer"),
            storage.streamed(URI) as sink,
        ):
            for _ in range(3):
                sink.write(b"y" * storage.PART_BYTES)
    finally:
        client.meta.events.unregister("before-call.s3.UploadPart", unreachable)
    assert not stage_aws.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    with pytest.raises(ArtifactMissing):
        storage.get_bytes(URI)
