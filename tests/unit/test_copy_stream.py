"""The binary COPY reader: fixed-width rows cut out of any chunking, broken streams refused."""

from __future__ import annotations

import numpy as np
import pytest

from common import copy_stream
from common.fetch import copy_row, uuid_array

ROW = copy_row(1)


def _copy_stream(rows: int, extension: bytes = b"") -> bytes:
    data = np.zeros(rows, dtype=ROW[0])
    for name, value in ROW[1].items():
        data[name] = value
    data["id"] = [i.to_bytes(16, "big") for i in range(rows)]
    data["model1"] = [bytes([i % 5]) * 16 for i in range(rows)]
    data["model2"] = [bytes([(i + 1) % 5]) * 16 for i in range(rows)]
    data["outcome"] = np.arange(rows) % 3
    header = copy_stream.COPY_SIGNATURE + (0).to_bytes(4, "big") + len(extension).to_bytes(4, "big")
    return header + extension + data.tobytes() + b"\xff\xff"


@pytest.mark.parametrize("gather", [1, copy_stream.GATHER_BYTES])
@pytest.mark.parametrize("chunk", [1, 7, 76, 1000, 10**6])
def test_copy_rows_survive_any_chunking(
    chunk: int, gather: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_stream, "GATHER_BYTES", gather)  # 1: every chunk as it comes
    stream = _copy_stream(1000, extension=b"ext")
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    batches = list(copy_stream.copy_row_batches(chunks, rows_per_batch=300, row=ROW))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    rows = np.concatenate(batches)
    assert [str(i) for i in uuid_array(rows["id"][999:]).to_pylist()] == [
        "00000000-0000-0000-0000-0000000003e7"
    ]
    assert rows["outcome"].tolist() == (np.arange(1000) % 3).tolist()


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"", "trailer"),
        (b"NOTCOPY" + bytes(30), "signature"),
        (_copy_stream(3)[:-2], "trailer"),
        (_copy_stream(3)[:-40] + b"\xff\xff", "inside a row"),
    ],
)
def test_broken_copy_streams_are_refused(stream: bytes, message: str) -> None:
    with pytest.raises(copy_stream.CopyFormatError, match=message):
        list(copy_stream.copy_row_batches([stream], rows_per_batch=2, row=ROW))
