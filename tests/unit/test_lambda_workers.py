"""The local run's Lambda worker processes: results and Lambda's error payloads come back, each
invocation runs in a worker with the functions' environment, a crashed worker fails its
invocation and is replaced, and no more invocations run at once than there are workers.

The handlers below are this module's functions, imported by the workers by their dotted names.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.report import most_at_once
from common.errors import InvalidInput
from local.lambda_runtime import FunctionError, InvocationContext, error_payload
from local.lambda_workers import Invocation, WorkerPool, cores_each, default_size

HERE = "tests.unit.test_lambda_workers"


def report(event: Any, context: InvocationContext) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "setting": os.environ.get("WORKER_TEST_SETTING"),
        "event": event,
        "function": context.function_name,
    }


def variable(event: Any, context: InvocationContext) -> str | None:
    return os.environ.get(event["name"])


def refuse(event: Any, context: InvocationContext) -> None:
    raise InvalidInput(f"refusing {event['slug']}")


def crash(event: Any, context: InvocationContext) -> None:
    os._exit(3)


def hold(event: Any, context: InvocationContext) -> int:
    time.sleep(event["seconds"])
    return os.getpid()


def log_line(event: Any, context: InvocationContext) -> None:
    print(f"line from {os.getpid()}")


def _context(name: str = "fn") -> InvocationContext:
    return InvocationContext(
        function_name=name,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        memory_limit_in_mb=128,
        timeout_s=60,
    )


def _pool(size: int, log_path: Path | None = None) -> WorkerPool:
    return WorkerPool(
        size,
        handlers=[f"{HERE}.{name}" for name in ("report", "refuse", "crash", "hold", "log_line")],
        environment={**os.environ, "WORKER_TEST_SETTING": "from-the-stack"},
        log_path=log_path,
    )


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    running = _pool(2).start()
    yield running
    running.stop()


def test_results_come_back_from_worker_processes_with_the_functions_environment(
    pool: WorkerPool,
) -> None:
    results = [pool.invoke("fn", f"{HERE}.report", {"n": n}, _context()) for n in range(3)]
    assert [r["event"] for r in results] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {r["setting"] for r in results} == {"from-the-stack"}
    assert {r["function"] for r in results} == {"fn"}
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids and pids <= set(pool.pids)
    assert [(i.function, i.pid) for i in pool.invocations] == [("fn", r["pid"]) for r in results]


def test_a_worker_has_only_the_functions_environment_not_what_the_forkserver_started_with() -> None:
    # The forkserver keeps the environment of the moment it started (in a test session, or in an
    # earlier local run in this process); a variable the functions lack must not reach them.
    name = next(key for key in ("HOME", "PATH") if key in os.environ)
    running = WorkerPool(
        1,
        handlers=[f"{HERE}.variable"],
        environment={key: value for key, value in os.environ.items() if key != name},
    ).start()
    try:
        assert running.invoke("fn", f"{HERE}.variable", {"name": name}, _context()) is None
    finally:
        running.stop()


def test_a_handler_error_comes_back_as_lambdas_error_payload(pool: WorkerPool) -> None:
    with pytest.raises(FunctionError) as raised:
        pool.invoke("fn", f"{HERE}.refuse", {"slug": "genetics"}, _context())
    payload = error_payload(raised.value)
    assert (payload["errorType"], payload["errorMessage"]) == ("InvalidInput", "refusing genetics")
    assert any("refuse" in frame for frame in payload["stackTrace"])
    # The worker that raised is still there for the next invocation.
    assert pool.invoke("fn", f"{HERE}.report", {}, _context())["setting"] == "from-the-stack"


def test_a_worker_that_dies_fails_its_invocation_and_is_replaced(pool: WorkerPool) -> None:
    before = set(pool.pids)
    with pytest.raises(FunctionError) as raised:
        pool.invoke("fn", f"{HERE}.crash", {}, _context())
    payload = error_payload(raised.value)
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit code 3" in payload["errorMessage"]
    assert len(pool.pids) == 2 and set(pool.pids) != before
    pids = {pool.invoke("fn", f"{HERE}.report", {}, _context())["pid"] for _ in range(4)}
    assert pids <= set(pool.pids)


def test_no_more_invocations_run_at_once_than_there_are_workers(pool: WorkerPool) -> None:
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                pool.invoke("fn", f"{HERE}.hold", {"seconds": 0.4}, _context())
            )
        )
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5 and set(results) == set(pool.pids)
    assert most_at_once(pool.invocations) == 2
    # Three of the five waited for a free worker.
    assert sum(i.started - i.asked > 0.2 for i in pool.invocations) >= 3


def test_workers_write_the_functions_logs_to_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "functions.jsonl"
    running = _pool(2, log_path=log).start()
    try:
        for _ in range(4):
            running.invoke("fn", f"{HERE}.log_line", {}, _context())
        pids = set(running.pids)
    finally:
        running.stop()
    lines = log.read_text().splitlines()
    assert len(lines) == 4
    assert {int(line.removeprefix("line from ")) for line in lines} <= pids


def test_the_pool_is_the_maps_concurrency_at_most_one_worker_per_core() -> None:
    assert default_size(4, cores=2) == 2
    assert default_size(4, cores=8) == 4
    assert default_size(1, cores=8) == 1
    assert default_size(0, cores=3) == 3  # an unbounded Map


def test_each_busy_worker_gets_its_share_of_the_cores() -> None:
    assert cores_each(2, cores=2) == 1
    assert cores_each(2, cores=8) == 4
    assert cores_each(3, cores=8) == 2
    assert cores_each(4, cores=2) == 1


def test_most_at_once_counts_overlapping_invocations() -> None:
    def run(start: float, end: float) -> Invocation:
        return Invocation("fn", 1, start, start, end, 100.0)

    assert most_at_once([]) == 0
    assert most_at_once([run(0, 1), run(1, 2), run(2, 3)]) == 1  # back to back
    assert most_at_once([run(0, 3), run(1, 2), run(1.5, 4), run(3.5, 5)]) == 3
