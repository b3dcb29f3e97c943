"""Fault injection for local runs: make a stage, the database or Slack fail on purpose.

Specs, as ``leaderboard run --inject-fault`` takes them:
``STAGE:transient[:N]`` (the stage fails N times, default 1, with its usual transient error, then
succeeds), ``STAGE:permanent`` (fails every attempt, not retried), ``db:down[:STAGE]`` (PostgreSQL
refuses connections, for every stage or one), ``slack:500``, ``slack:429``, ``slack:timeout``.
The faults act at the boundary of the in-process Lambda dispatch and in the local Slack stand-in,
never inside our own code, so the stages meet them exactly as they would meet the real thing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.errors import (
    DatabaseUnavailable,
    InvalidInput,
    PermanentError,
    SlackUnavailable,
    StorageUnavailable,
    TransientError,
)

STAGES = ("fetch", "rank", "publish", "notify")
SLACK_MODES = ("500", "429", "timeout")

# The transient error each stage meets most often in production.
_TRANSIENT_BY_STAGE: dict[str, type[TransientError]] = {
    "fetch": DatabaseUnavailable,
    "rank": StorageUnavailable,
    "publish": DatabaseUnavailable,
    "notify": SlackUnavailable,
}

CLOSED_DATABASE_URL = "postgresql://leaderboard@127.0.0.1:9/leaderboard?connect_timeout=2"
"""Port 9 (discard) has no listener here: connecting is refused at once, like a stopped server."""


class InjectedFailure(PermanentError):
    """A permanent failure injected with ``STAGE:permanent``."""


@dataclass(frozen=True)
class Fault:
    target: str
    kind: str
    times: int | None = None
    """For transient faults: how many attempts fail before one succeeds."""


def parse_fault(spec: str) -> Fault:
    """Parse one ``--inject-fault`` spec; raises InvalidInput naming what is wrong."""
    parts = spec.strip().split(":")
    target = parts[0]
    if target in STAGES:
        if len(parts) >= 2 and parts[1] == "permanent" and len(parts) == 2:
            return Fault(target, "permanent")
        if len(parts) in (2, 3) and parts[1] == "transient":
            times = 1
            if len(parts) == 3:
                if not parts[2].isdigit() or int(parts[2]) < 1:
                    raise InvalidInput(f"--inject-fault {spec!r}: N must be a positive integer")
                times = int(parts[2])
            return Fault(target, "transient", times)
        raise InvalidInput(
            f"--inject-fault {spec!r}: expected {target}:transient[:N] or {target}:permanent"
        )
    if target == "db" and len(parts) in (2, 3) and parts[1] == "down":
        if len(parts) == 3 and parts[2] not in STAGES:
            raise InvalidInput(f"--inject-fault {spec!r}: unknown stage {parts[2]!r}")
        return Fault("db", "down", None) if len(parts) == 2 else Fault(f"db:{parts[2]}", "down")
    if target == "slack" and len(parts) == 2 and parts[1] in SLACK_MODES:
        return Fault("slack", parts[1])
    raise InvalidInput(
        f"--inject-fault {spec!r}: expected STAGE:transient[:N], STAGE:permanent, db:down[:STAGE],"
        f" or slack:500|429|timeout (STAGE is one of {', '.join(STAGES)})"
    )


@dataclass
class FaultPlan:
    """The faults of one run; counts transient failures across attempts (thread-safe)."""

    faults: tuple[Fault, ...] = ()
    _remaining: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> FaultPlan:
        faults = tuple(parse_fault(s) for s in specs)
        return cls(faults, {f.target: f.times or 0 for f in faults if f.kind == "transient"})

    def before_invoke(self, stage: str) -> None:
        """Raise the injected failure for this attempt of ``stage``, if any."""
        for fault in self.faults:
            if fault.target != stage:
                continue
            if fault.kind == "permanent":
                raise InjectedFailure(f"injected permanent failure in {stage}")
            with self._lock:
                left = self._remaining.get(stage, 0)
                if left > 0:
                    self._remaining[stage] = left - 1
                    raise _TRANSIENT_BY_STAGE[stage](
                        f"injected transient failure in {stage} ({left} left)"
                    )

    def database_down(self, stage: str) -> bool:
        return any(f.kind == "down" and f.target in ("db", f"db:{stage}") for f in self.faults)

    def slack_mode(self) -> str | None:
        return next((f.kind for f in self.faults if f.target == "slack"), None)
