"""Fault injection for local runs: make a stage, the database or Slack fail on purpose.

Specs, as ``leaderboard run --inject-fault`` takes them:
``STAGE:transient[:N]`` (the stage fails N times, default 1, with its usual transient error, then
succeeds), ``STAGE:permanent`` (fails every attempt, not retried), ``STAGE:timeout[:N]`` (N
invocations run out of time, as Lambda reports it: ``Sandbox.Timedout``), ``db:down[:STAGE]``
(PostgreSQL refuses connections, for every stage or one), ``db:down:STAGE:DURATION`` (an outage
of e.g. ``180s`` or ``3m`` that begins with the stage's first attempt), ``slack:500``,
``slack:429``, ``slack:timeout``. The faults act at the boundary of the runner's Lambda dispatch
(before an invocation reaches a worker process or thread), in the database proxy and in the local
Slack stand-in, never inside our own code, so the stages meet them exactly as they would meet
the real thing. All of it stays in the runner's process: a worker meets an outage as a refused
connection, and a decision (and a test's timeline) never depends on which worker runs a task.

A timed outage is measured on the plan's timeline, asked at each attempt: which task is trying
(the execution's, or one Map iteration's) and what time it is for that task. By default the one
wall clock, so a local run's real retry waits carry it past the outage. A test that records the
retrier's waits instead of sleeping them passes a timeline that adds each task's recorded waits
to the wall clock (``tests/conftest.py``): an attempt then finds the database down until its own
task's waits since the outage began (plus the time that really passed) sum past the duration --
never sooner than real time would have passed for that task.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from common.errors import (
    DatabaseUnavailable,
    InvalidInput,
    PermanentError,
    SlackUnavailable,
    StorageUnavailable,
    TransientError,
)
from local.lambda_runtime import FunctionError

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


LAMBDA_TIMEOUT_ERROR = "Sandbox.Timedout"
"""The errorType Lambda reports for an invocation that ran out of time."""
_DURATION_RE = re.compile(r"(?P<amount>[1-9]\d{0,5})(?P<unit>[sm])")

Timeline = Callable[[], tuple[Hashable, float]]
"""(the task an attempt belongs to, the time in seconds as that task sees it): see the module
docstring."""


def wall_time() -> tuple[Hashable, float]:
    """One clock for every task: the retries' real waits are real time."""
    return None, time.monotonic()


@dataclass(frozen=True)
class Fault:
    target: str
    kind: str
    times: int | None = None
    """For transient and timeout faults: how many attempts fail before one succeeds."""
    duration_s: int | None = None
    """For a database outage: how long it lasts; None: for the whole run."""


def parse_fault(spec: str) -> Fault:
    """Parse one ``--inject-fault`` spec; raises InvalidInput naming what is wrong."""
    parts = spec.strip().split(":")
    target = parts[0]
    if target in STAGES:
        if len(parts) == 2 and parts[1] == "permanent":
            return Fault(target, "permanent")
        if len(parts) in (2, 3) and parts[1] in ("transient", "timeout"):
            times = 1
            if len(parts) == 3:
                if not parts[2].isdecimal() or int(parts[2]) < 1:
                    raise InvalidInput(f"--inject-fault {spec!r}: N must be a positive integer")
                times = int(parts[2])
            return Fault(target, parts[1], times)
        raise InvalidInput(
            f"--inject-fault {spec!r}: expected {target}:transient[:N], {target}:timeout[:N]"
            f" or {target}:permanent"
        )
    if target == "db" and len(parts) in (2, 3, 4) and parts[1] == "down":
        if len(parts) >= 3 and parts[2] not in STAGES:
            raise InvalidInput(f"--inject-fault {spec!r}: unknown stage {parts[2]!r}")
        if len(parts) == 2:
            return Fault("db", "down")
        if len(parts) == 3:
            return Fault(f"db:{parts[2]}", "down")
        return Fault(f"db:{parts[2]}", "down", duration_s=_duration_s(parts[3], spec))
    if target == "slack" and len(parts) == 2 and parts[1] in SLACK_MODES:
        return Fault("slack", parts[1])
    raise InvalidInput(
        f"--inject-fault {spec!r}: expected STAGE:transient[:N], STAGE:timeout[:N],"
        f" STAGE:permanent, db:down[:STAGE[:DURATION]], or slack:500|429|timeout"
        f" (STAGE is one of {', '.join(STAGES)}; DURATION e.g. 180s or 3m)"
    )


def _duration_s(text: str, spec: str) -> int:
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            f"--inject-fault {spec!r}: the duration must be seconds or minutes, e.g. 180s or 3m"
        )
    return int(match["amount"]) * (60 if match["unit"] == "m" else 1)


@dataclass
class Outage:
    """One timed database outage; it begins when the first attempt of its stage asks."""

    duration_s: float
    _began_at: float | None = None
    _first_look: dict[Hashable, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def down(self, timeline: Timeline) -> bool:
        """Whether an attempt starting now finds the database down."""
        now = time.monotonic()
        task, seen = timeline()
        with self._lock:
            if self._began_at is None:
                self._began_at = now
            # A task's first look: from here on its own time tells how much passed for it.
            first_now, first_seen = self._first_look.setdefault(task, (now, seen))
            return (first_now - self._began_at) + (seen - first_seen) < self.duration_s


@dataclass
class FaultPlan:
    """The faults of one run; counts transient failures across attempts (thread-safe)."""

    faults: tuple[Fault, ...] = ()
    timeline: Timeline = wall_time
    _remaining: dict[tuple[str, str], int] = field(default_factory=dict)
    _outages: dict[str, Outage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_specs(cls, specs: Iterable[str], *, timeline: Timeline = wall_time) -> FaultPlan:
        faults = tuple(parse_fault(s) for s in specs)
        counted = {(f.target, f.kind): f.times or 0 for f in faults if f.times is not None}
        outages = {f.target: Outage(f.duration_s) for f in faults if f.duration_s is not None}
        return cls(faults, timeline, counted, outages)

    def before_invoke(self, stage: str, *, timeout_s: float | None = None) -> None:
        """Raise the injected failure for this attempt of ``stage``, if any."""
        for fault in self.faults:
            if fault.target != stage:
                continue
            if fault.kind == "permanent":
                raise InjectedFailure(f"injected permanent failure in {stage}")
            with self._lock:
                left = self._remaining.get((stage, fault.kind), 0)
                if left > 0:
                    self._remaining[(stage, fault.kind)] = left - 1
            if left <= 0:
                continue
            if fault.kind == "timeout":
                after = f" after {timeout_s:.2f} seconds" if timeout_s is not None else ""
                raise FunctionError(LAMBDA_TIMEOUT_ERROR, f"Task timed out{after} (injected)")
            raise _TRANSIENT_BY_STAGE[stage](f"injected transient failure in {stage} ({left} left)")

    @property
    def touches_database(self) -> bool:
        """Whether any fault takes the database down (every attempt then goes through the
        switch, so that one finding it up never overlaps one meeting it down)."""
        return any(f.kind == "down" for f in self.faults)

    def database_down(self, stage: str) -> bool:
        """Whether an attempt of ``stage`` starting now finds the database down."""
        for fault in self.faults:
            if fault.kind != "down" or fault.target not in ("db", f"db:{stage}"):
                continue
            outage = self._outages.get(fault.target)
            if outage is None or outage.down(self.timeline):
                return True
        return False

    def slack_mode(self) -> str | None:
        return next((f.kind for f in self.faults if f.target == "slack"), None)


class DatabaseSwitch:
    """The database proxy, switched off for attempts that must meet the database down and on for
    attempts that must find it up. The two kinds never overlap: when one Map iteration's outage
    is over and another's is not, each waits for the other kind to finish rather than cut its
    connection. The proxy stays as the last attempt left it, so consecutive failing attempts do
    not restart it each time."""

    def __init__(self, switch_off: Callable[[], object], switch_on: Callable[[], object]) -> None:
        self._switch_off, self._switch_on = switch_off, switch_on
        self._changed = threading.Condition()
        self._running = {True: 0, False: 0}
        self._off = False

    @contextmanager
    def attempt(self, is_down: Callable[[], bool]) -> Iterator[bool]:
        """Run one attempt with the database as ``is_down()`` says at the moment it may start."""
        with self._changed:
            while True:
                down = is_down()
                if self._running[not down] == 0:
                    break
                self._changed.wait()
            # Switched before it is counted: a switch that fails (the proxy would not start)
            # leaves no attempt counted that never runs, which the other kind would wait for.
            if down != self._off:
                (self._switch_off if down else self._switch_on)()
                self._off = down
            self._running[down] += 1
        try:
            yield down
        finally:
            with self._changed:
                self._running[down] -= 1
                self._changed.notify_all()
