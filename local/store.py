"""Local executions kept on disk: what `leaderboard executions`, `status` and `redrive` read.

Each execution is saved under ``.local/executions`` with its definition and history, and the
run's S3 objects under ``.local/s3``, so a later process (a redrive, the status command) finds
them after moto's in-memory state is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common.stepfunctions.history import FAILED_STATUSES

EMBEDDED_DATABASE = "the embedded database"


class LocalRunError(Exception):
    """The local run could not be set up or resumed; the message says why."""


@dataclass
class ExecutionRecord:
    """A local execution as saved under ``.local/executions``: enough to list and redrive it."""

    name: str
    execution_arn: str
    status: str
    input: Any
    output: Any
    error: str | None
    cause: str | None
    started_at: str
    stopped_at: str | None
    definition: dict[str, Any]
    history: list[dict[str, Any]]
    redrive_of: str | None = None
    redrives: list[str] = field(default_factory=list)
    database: str | None = None
    """The database the run read and wrote (``database_label``; None in records saved before
    it was kept): a redrive must resume on the same one."""

    @property
    def redrive_command(self) -> str:
        """The command that resumes this execution, naming the database it ran on when that is
        not the embedded one (the URL's user and password are the operator's to give again)."""
        command = f"leaderboard redrive {self.redrive_of or self.name}"
        if self.database not in (None, EMBEDDED_DATABASE):
            command += f" --database-url URL  (the URL of {self.database})"
        return command

    def check_database(self, here: str) -> None:
        """Refuse to resume this execution on another database (``here``, a ``database_label``)
        than the one it ran on: its stages would fetch other votes or publish into another
        BixArena."""
        if self.database is None or self.database == here:
            return
        how = (
            "without --database-url"
            if self.database == EMBEDDED_DATABASE
            else f"with --database-url for {self.database}"
        )
        raise LocalRunError(f"{self.name} ran on {self.database}, not {here}: redrive it {how}")

    @property
    def seconds(self) -> float:
        if not self.stopped_at:
            return 0.0
        return (
            datetime.fromisoformat(self.stopped_at) - datetime.fromisoformat(self.started_at)
        ).total_seconds()


class ExecutionStore:
    """Local executions and the S3 objects they wrote, in a folder that outlives the process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.executions = root / "executions"
        self.objects = root / "s3"

    def save(self, record: ExecutionRecord) -> Path:
        self.executions.mkdir(parents=True, exist_ok=True)
        path = self.executions / f"{record.name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), default=json_default, indent=1))
        tmp.replace(path)
        return path

    def load(self, name: str) -> ExecutionRecord:
        path = self.executions / f"{name}.json"
        if not path.exists():
            raise LocalRunError(f"no local execution named {name!r} (see `leaderboard executions`)")
        return ExecutionRecord(**json.loads(path.read_text()))

    def all(self) -> list[ExecutionRecord]:
        if not self.executions.exists():
            return []
        records = [
            ExecutionRecord(**json.loads(p.read_text())) for p in self.executions.glob("*.json")
        ]
        return sorted(records, key=lambda r: r.started_at)

    def last_failed(self) -> ExecutionRecord:
        failed = [r for r in self.all() if r.redrive_of is None and r.status in FAILED_STATUSES]
        if not failed:
            raise LocalRunError(
                "no failed local execution to redrive (see `leaderboard executions`)"
            )
        return failed[-1]

    def dump_bucket(self, s3: Any, bucket: str) -> None:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                target = self.objects / bucket / item["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())

    def restore_bucket(self, s3: Any, bucket: str, prefixes: Iterable[str]) -> int:
        """Put back the saved objects whose keys start with one of ``prefixes``; returns how
        many. (The folder keeps every run's objects: restoring them all would cost seconds.)"""
        folder = self.objects / bucket
        wanted = tuple(prefixes)
        if not folder.exists() or not wanted:
            return 0
        restored = 0
        for path in sorted(folder.rglob("*")):
            key = str(path.relative_to(folder))
            if path.is_file() and key.startswith(wanted):
                s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
                restored += 1
        return restored


def database_label(url: str | None) -> str:
    """Which database a local run uses, as its record keeps it: the embedded one (no
    --database-url), else host, port and name of the URL, never its user or password."""
    if not url:
        return EMBEDDED_DATABASE
    from common.db import conninfo

    info = conninfo(url)
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")
