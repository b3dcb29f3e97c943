"""Fault specs for local runs: parsing, counting, and the errors they raise."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

import pytest

from common.errors import DatabaseUnavailable, InvalidInput, SlackUnavailable, StorageUnavailable
from local.faults import DatabaseSwitch, Fault, FaultPlan, InjectedFailure, Outage, parse_fault
from local.moto_lambda import FunctionError, error_payload


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("fetch:transient", Fault("fetch", "transient", 1)),
        ("rank:transient:3", Fault("rank", "transient", 3)),
        ("publish:permanent", Fault("publish", "permanent")),
        ("db:down", Fault("db", "down")),
        ("db:down:publish", Fault("db:publish", "down")),
        ("db:down:publish:180s", Fault("db:publish", "down", duration_s=180)),
        ("db:down:fetch:3m", Fault("db:fetch", "down", duration_s=180)),
        ("rank:timeout", Fault("rank", "timeout", 1)),
        ("rank:timeout:2", Fault("rank", "timeout", 2)),
        ("slack:429", Fault("slack", "429")),
        ("slack:timeout", Fault("slack", "timeout")),
    ],
)
def test_specs(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "fetch",
        "fetch:sometimes",
        "rank:transient:0",
        "rank:transient:x",
        "rank:transient:\u00b2",  # a digit to str.isdigit, not a number to int()
        "db:up",
        "db:down:s3",
        "db:down:publish:180",
        "db:down:publish:0s",
        "db:down:publish:3h",
        "db:down:publish:180s:x",
        "rank:timeout:0",
        "slack:418",
        "email:down",
    ],
)
def test_bad_specs_are_named(spec: str) -> None:
    with pytest.raises(InvalidInput, match="--inject-fault"):
        parse_fault(spec)


def test_transient_faults_run_out() -> None:
    plan = FaultPlan.from_specs(["fetch:transient:2", "rank:transient", "notify:transient"])
    for _ in range(2):
        with pytest.raises(DatabaseUnavailable):
            plan.before_invoke("fetch")
    plan.before_invoke("fetch")
    with pytest.raises(StorageUnavailable):
        plan.before_invoke("rank")
    with pytest.raises(SlackUnavailable):
        plan.before_invoke("notify")
    plan.before_invoke("publish")


def test_permanent_faults_never_run_out() -> None:
    plan = FaultPlan.from_specs(["publish:permanent"])
    for _ in range(3):
        with pytest.raises(InjectedFailure):
            plan.before_invoke("publish")


def test_database_and_slack_faults() -> None:
    plan = FaultPlan.from_specs(["db:down:publish", "slack:500"])
    assert plan.database_down("publish") and not plan.database_down("fetch")
    assert FaultPlan.from_specs(["db:down"]).database_down("fetch")
    assert plan.slack_mode() == "500"
    assert FaultPlan().slack_mode() is None


def test_timeouts_are_what_lambda_reports_and_run_out() -> None:
    plan = FaultPlan.from_specs(["rank:timeout:2", "rank:transient"])
    for _ in range(2):
        with pytest.raises(FunctionError) as raised:
            plan.before_invoke("rank", timeout_s=600)
        payload = error_payload(raised.value)
        assert payload == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "Task timed out after 600.00 seconds (injected)",
        }
    # The timeouts are spent; the transient fault on the same stage counts on its own.
    with pytest.raises(StorageUnavailable):
        plan.before_invoke("rank")
    plan.before_invoke("rank")


class Timeline:
    """Tasks whose time the test moves by hand: the clock a test with spared waits gives."""

    def __init__(self) -> None:
        self.task: Hashable = "a"
        self.spared: dict[Hashable, float] = {}

    def __call__(self) -> tuple[Hashable, float]:
        return self.task, time.monotonic() + self.spared.get(self.task, 0.0)


def test_a_timed_outage_lasts_until_each_tasks_own_time_passes_it() -> None:
    timeline = Timeline()
    timeline.spared["a"] = 500.0  # waits of an earlier stage: before the outage, they do not count
    plan = FaultPlan.from_specs(["db:down:publish:60s"], timeline=timeline)
    assert not plan.database_down("fetch")
    assert plan.database_down("publish")  # the outage begins with publish's first attempt
    timeline.spared["a"] += 59
    assert plan.database_down("publish")
    timeline.spared["a"] += 2
    assert not plan.database_down("publish")
    # Another task counts its own waits only, from its own first attempt.
    timeline.task = "b"
    assert plan.database_down("publish")
    timeline.spared["b"] = 30
    assert plan.database_down("publish")
    timeline.spared["b"] = 61
    assert not plan.database_down("publish")


def test_an_outage_on_the_wall_clock_ends_with_real_time() -> None:
    outage = Outage(0.2)
    assert outage.down(lambda: (None, time.monotonic()))
    time.sleep(0.25)
    assert not outage.down(lambda: (None, time.monotonic()))


def test_attempts_meeting_the_database_down_and_up_never_overlap() -> None:
    switched: list[str] = []
    switch = DatabaseSwitch(lambda: switched.append("off"), lambda: switched.append("on"))
    down_running = threading.Event()
    release = threading.Event()

    def failing_attempt() -> None:
        with switch.attempt(lambda: True) as down:
            assert down
            down_running.set()
            release.wait(5)

    worker = threading.Thread(target=failing_attempt)
    worker.start()
    assert down_running.wait(5)
    entered_up = threading.Event()

    def succeeding_attempt() -> None:
        with switch.attempt(lambda: False):
            entered_up.set()

    other = threading.Thread(target=succeeding_attempt)
    other.start()
    assert not entered_up.wait(0.2), "an up attempt waits while a down attempt runs"
    with switch.attempt(lambda: True):  # another down attempt joins the running one
        pass
    release.set()
    worker.join(5)
    other.join(5)
    assert entered_up.is_set()
    assert switched == ["off", "on"], "off once for both down attempts, on for the up one"


def test_a_failed_switch_blocks_no_later_attempt() -> None:
    starts = iter([RuntimeError("the database proxy did not start within 20 s")])

    def switch_on() -> None:
        failure = next(starts, None)
        if failure is not None:
            raise failure

    switch = DatabaseSwitch(lambda: None, switch_on)
    with switch.attempt(lambda: True):
        pass
    with pytest.raises(RuntimeError, match="did not start"), switch.attempt(lambda: False):
        pass
    done = threading.Event()

    def down_attempt() -> None:
        with switch.attempt(lambda: True):
            done.set()

    worker = threading.Thread(target=down_attempt, daemon=True)
    worker.start()
    assert done.wait(5), "a down attempt waited for an up attempt that never ran"
