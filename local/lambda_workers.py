"""Lambda invocations in worker processes, for local runs: one interpreter per running function.

On AWS each invocation of a Map iteration's stage is its own Lambda; in one local process they
would be threads fighting over one GIL. ``WorkerPool`` spawns its processes once per local run,
keeps them warm (each imports the handlers once, with the functions' environment and the AWS
endpoint of the runner's moto server, so every process sees the same S3, secrets and state
machines), and hands each invocation to an idle one: the caller blocks until the handler's result
comes back, or gets ``FunctionError`` with Lambda's error payload as the worker made it. A worker
that dies mid-invocation fails that invocation as Lambda does (``Runtime.ExitError``) and is
replaced. Each invocation is recorded (function, worker pid, start and end) for the record.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import os
import queue
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from local.lambda_runtime import FunctionError, InvocationContext, error_payload

START_TIMEOUT_S = 120.0
"""How long a worker may take to import the handlers (several at once on a loaded machine)."""
PRELOAD = (
    "numpy",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.parquet",
    "boto3",
    "botocore.config",
    "psycopg",
    "psycopg.rows",
    "aws_lambda_powertools",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.parameters",
    "slack_sdk.webhook",
    "jwt",
)
"""The heavy third-party packages the handlers import (seconds of imports). Workers are forked
from one server process per runner process that imported them once (multiprocessing's
forkserver), so a pool starts in milliseconds after the first; a test session's pools share it.
Our own modules are imported in each worker once it has the functions' environment, because
``common.observability`` reads it at import."""


def warm_up() -> None:
    """Start the forkserver now, so it imports PRELOAD while the caller does other work (a
    pool started later forks from it at once). Idempotent."""
    _context()
    multiprocessing.forkserver.ensure_running()


def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


class WorkersFailed(RuntimeError):
    """A worker process could not be started; the message says why."""


@dataclass(frozen=True)
class Invocation:
    """One handler call: the process that ran it, and when (wall-clock seconds since the epoch)
    it was asked for, started and ended (``started - asked``: the wait for a free worker);
    ``peak_mb``: that process's peak resident size so far (Lambda's "Max Memory Used")."""

    function: str
    pid: int
    asked: float
    started: float
    ended: float
    peak_mb: float


def default_size(max_concurrency: int, cores: int | None = None) -> int:
    """Workers for a Map of ``max_concurrency`` (0: unbounded) on this machine's cores."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, min(max_concurrency, cores) if max_concurrency > 0 else cores)


def cores_each(size: int, cores: int | None = None) -> int:
    """The cores each of ``size`` busy workers has on this machine (at least one). On AWS each
    invocation has the vCPUs of its own Lambda; here the workers share the machine's, and a
    worker that ran a thread per core would only make the others wait."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(size, 1))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection


class WorkerPool:
    """``size`` warm worker processes running the handlers named in ``handlers``."""

    def __init__(
        self,
        size: int,
        *,
        handlers: Iterable[str],
        environment: dict[str, str],
        log_path: Path | None = None,
    ) -> None:
        self.size = size
        self.handlers = tuple(sorted(set(handlers)))
        self.environment = dict(environment)
        self.log_path = log_path
        self.invocations: list[Invocation] = []
        self._context = _context()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> WorkerPool:
        """Spawn every worker, then wait until each has imported the handlers."""
        spawned = [self._spawn() for _ in range(self.size)]
        for worker in spawned:
            self._ready(worker)
            self._idle.put(worker)
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            workers, self._all = self._all, []
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(5)
            worker.conn.close()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._all if w.process.pid is not None]

    def invoke(self, function: str, handler: str, event: Any, context: InvocationContext) -> Any:
        """Run ``handler`` on ``event`` in an idle worker; raises FunctionError when it failed."""
        asked = time.time()
        worker = self._idle_worker(function)
        try:
            worker.conn.send((handler, event, context))
            outcome, value, pid, started, ended, peak_mb = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(5)
            code = worker.process.exitcode
            self._replace(worker)
            raise FunctionError(
                "Runtime.ExitError",
                f"RequestId: {context.aws_request_id} Error: the worker process exited"
                f" (exit code {code}) while running {function}",
            ) from None
        self._idle.put(worker)
        self.invocations.append(Invocation(function, pid, asked, started, ended, peak_mb))
        if outcome == "error":
            raise FunctionError.from_payload(value)
        return value

    def _idle_worker(self, function: str) -> _Worker:
        while True:
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    left = len(self._all)
                if left == 0:  # every worker died and none could be started again
                    raise FunctionError(
                        "Runtime.Unavailable", f"no Lambda worker process is left to run {function}"
                    ) from None

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(child, self.environment, self.handlers, self.log_path),
            daemon=True,
            name="lambda-worker",
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        with self._lock:
            self._all.append(worker)
        return worker

    def _ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(START_TIMEOUT_S):
            raise WorkersFailed(f"a Lambda worker did not start within {START_TIMEOUT_S:.0f} s")
        try:
            message = worker.conn.recv()
        except EOFError:
            raise WorkersFailed(
                f"a Lambda worker exited while starting (exit code {worker.process.exitcode})"
            ) from None
        if message[0] != "ready":
            raise WorkersFailed(f"a Lambda worker could not import the handlers: {message[1]}")

    def _replace(self, dead: _Worker) -> None:
        with self._lock:
            if dead in self._all:
                self._all.remove(dead)
            stopped = self._stopped
        dead.conn.close()
        if stopped:
            return
        replacement = self._spawn()
        try:
            self._ready(replacement)
        except WorkersFailed:
            return
        self._idle.put(replacement)


def _serve(
    conn: Connection, environment: dict[str, str], handlers: tuple[str, ...], log_path: Path | None
) -> None:
    """A worker's life: take the functions' environment, import the handlers, run invocations."""
    # Ctrl-C is the runner's to handle (a backfill lets the execution under way end): a worker
    # in its process group must not die of it mid-invocation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replaced, not updated: the forkserver keeps the environment of the moment it started (maybe
    # inside an earlier run, with a variable this run's functions do not have).
    os.environ.clear()
    os.environ.update(environment)
    try:
        if log_path is not None:
            _log_to(log_path)
        loaded = {dotted: _load(dotted) for dotted in handlers}
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            # Nothing is left to flush (logs go a line at a time, metrics at each invocation's
            # end): skip tearing down numpy, pyarrow and the rest, which takes a second.
            sys.stdout.flush()
            os._exit(0)
        dotted, event, context = request
        started = time.time()
        try:
            outcome, value = "ok", loaded[dotted](event, context)
        except Exception as exc:
            outcome, value = "error", error_payload(exc)
        conn.send((outcome, value, os.getpid(), started, time.time(), peak_mb()))


def peak_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _load(dotted: str) -> Any:
    module_name, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _log_to(path: Path) -> None:
    """The functions' JSON logs and EMF metrics (printed to stdout) go to the run's log file, a
    line at a time, so lines of workers writing at once never interleave within a line."""
    from common.observability import logger

    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", buffering=1)
    sys.stdout = stream
    logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
