"""Fault specs for local runs: parsing, counting, and the errors they raise."""

from __future__ import annotations

import pytest

from common.errors import DatabaseUnavailable, InvalidInput, SlackUnavailable, StorageUnavailable
from local.faults import Fault, FaultPlan, InjectedFailure, parse_fault


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("fetch:transient", Fault("fetch", "transient", 1)),
        ("rank:transient:3", Fault("rank", "transient", 3)),
        ("publish:permanent", Fault("publish", "permanent")),
        ("db:down", Fault("db", "down")),
        ("db:down:publish", Fault("db:publish", "down")),
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
        "db:up",
        "db:down:s3",
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
