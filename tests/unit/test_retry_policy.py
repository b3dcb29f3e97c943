"""The retry policies on their own: sized so that a 3-minute database outage is ridden out.

A Retry entry with ``JitterStrategy: FULL`` waits, before retry k, a time drawn uniformly between 0
and ``min(IntervalSeconds * BackoffRate**k, MaxDelaySeconds)`` (the Step Functions documentation;
moto's interpreter does the same). The literal worst case of full jitter is every draw at 0 --
no wait at all -- so no jittered policy can promise a minimum wait; what it can promise is a
probability. Here it is computed exactly: the total wait before the last attempt is a sum of
independent uniforms, whose distribution function has a closed form (inclusion-exclusion over
the widths), evaluated in rational arithmetic. The expectations (3 minutes, the connect
timeout, the execution timeout) come from the issue and the stack, not from the policy.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction
from typing import Any

import pytest

from cli.backfill_aws import MAX_CONCURRENCY
from common.db import CONNECT_TIMEOUT_S
from infra.functions import SIZING
from infra.stack import EXECUTION_TIMEOUT
from infra.state_machine import STAGE_RETRIES

OUTAGE_S = 180
"""A PostgreSQL failover or restart takes one to two minutes: ride out three."""
ATTEMPT_S = CONNECT_TIMEOUT_S
"""The stage's own attempt time during an outage: a connect that hangs (a failover's old address)
rather than being refused gives up after the connect timeout. Added to the outage as margin."""
MISS_PROBABILITY = 1e-5
"""At most one outage in 100,000 may outlast the waits and fail the run (it is then redriven)."""


def retrier(stage: str, error: str) -> dict[str, Any]:
    """The Retry entry of ``stage`` that handles ``error``: the first that names it, as in ASL."""
    for policy in STAGE_RETRIES[stage]:
        entry = policy.as_asl()
        if error in entry["ErrorEquals"]:
            return entry
    raise AssertionError(f"{stage} does not retry {error}")


def wait_caps(entry: dict[str, Any]) -> list[Fraction]:
    """The longest wait before each retry: IntervalSeconds * BackoffRate**k, capped."""
    cap = entry.get("MaxDelaySeconds", math.inf)
    return [
        Fraction(min(entry["IntervalSeconds"] * entry["BackoffRate"] ** k, cap))
        for k in range(entry["MaxAttempts"])
    ]


def probability_below(widths: list[Fraction], t: Fraction) -> Fraction:
    """P(U1 + ... + Un < t) for independent Ui uniform on [0, widths[i]], exactly.

    F(t) = sum over subsets A of (-1)^|A| (t - sum(A))_+^n / (n! * prod(widths)); equal widths
    are grouped, so the sum runs over how many of each width are in A.
    """
    n = len(widths)
    groups = list(Counter(widths).items())
    total = Fraction(0)
    for picked in itertools.product(*(range(count + 1) for _, count in groups)):
        reach = t - sum(width * k for (width, _), k in zip(groups, picked, strict=True))
        if reach <= 0:
            continue
        ways = math.prod(math.comb(count, k) for (_, count), k in zip(groups, picked, strict=True))
        total += (-1) ** sum(picked) * ways * reach**n
    return total / (math.factorial(n) * math.prod(widths))


@pytest.mark.parametrize(
    ("widths", "t", "expected"),
    [
        ([Fraction(30)], Fraction(12), Fraction(12, 30)),
        ([Fraction(1), Fraction(1)], Fraction(1), Fraction(1, 2)),
        ([Fraction(1), Fraction(1)], Fraction(3, 2), Fraction(7, 8)),
        ([Fraction(1)] * 3, Fraction(1), Fraction(1, 6)),
        ([Fraction(2), Fraction(4)], Fraction(3), Fraction(1, 2)),
        ([Fraction(2), Fraction(4)], Fraction(6), Fraction(1)),
    ],
)
def test_the_distribution_function_matches_known_cases(
    widths: list[Fraction], t: Fraction, expected: Fraction
) -> None:
    """One uniform, the triangle of two, Irwin-Hall's 1/3! of three, and U(0,2)+U(0,4) at 3
    (the region x+y<3 of the 2x4 box has area 2*3 - 2*2/2 = 4, of 8: one half)."""
    assert probability_below(widths, t) == expected


@pytest.mark.parametrize("stage", ["fetch", "publish"])
def test_a_three_minute_database_outage_is_ridden_out(stage: str) -> None:
    entry = retrier(stage, "DatabaseUnavailable")
    assert entry["JitterStrategy"] == "FULL"
    caps = wait_caps(entry)
    needed = Fraction(OUTAGE_S + ATTEMPT_S)
    # The waits before the last attempt are one per retry: all of them.
    assert sum(caps) / 2 > needed, "on average the waits must cover the outage with room"
    miss = probability_below(caps, needed)
    assert miss <= MISS_PROBABILITY, f"P(waits < {needed} s) = {float(miss):.2e}"
    # Today's policy (2, 4, 8, 16 s without jitter) would give up after 30 s of waits.
    assert probability_below([Fraction(w) for w in (2, 4, 8, 16)], needed) == 1


def test_the_schedule_is_the_documented_one() -> None:
    """docs/state-machine.md: 2, 4, 8, 16, then 30 s caps, 28 retries (750 s at most)."""
    caps = wait_caps(retrier("fetch", "DatabaseUnavailable"))
    assert caps == [2, 4, 8, 16] + [30] * 24
    assert sum(caps) == 750
    others = wait_caps(retrier("notify", "SlackUnavailable"))
    assert others == [2, 4, 8, 16, 30, 30] and sum(others) == 90


def test_rank_retries_its_own_timeout_once_and_no_other_stage_does() -> None:
    for error in ("Sandbox.Timedout", "Lambda.Unknown"):
        entry = retrier("rank", error)
        assert entry["MaxAttempts"] == 1 and "JitterStrategy" not in entry
        for stage in ("fetch", "publish", "notify"):
            assert all(error not in p.as_asl()["ErrorEquals"] for p in STAGE_RETRIES[stage])


def test_every_stage_meeting_its_worst_fault_still_ends_within_the_execution_timeout() -> None:
    """The database down through fetch's and publish's whole budgets (each attempt waiting out
    its connect timeout), rank timing out twice, Slack down through notify's budget (each
    attempt running to the function's timeout): the execution still ends -- FAILED at a stage,
    redrivable, alerted -- before the state machine's own timeout would cut it short."""

    def worst(stage: str, error: str, attempt_s: float) -> float:
        entry = retrier(stage, error)
        return float(sum(wait_caps(entry))) + (entry["MaxAttempts"] + 1) * attempt_s

    total = (
        worst("fetch", "DatabaseUnavailable", CONNECT_TIMEOUT_S)
        + worst("rank", "Sandbox.Timedout", SIZING["rank"].timeout.to_seconds())
        + worst("publish", "DatabaseUnavailable", CONNECT_TIMEOUT_S)
        + worst("notify", "SlackUnavailable", SIZING["notify"].timeout.to_seconds())
    )
    assert total < EXECUTION_TIMEOUT.to_seconds(), total


FETCH_S = 15
"""A fetch on Lambda at BixArena's size, cold start in the VPC included (generous: fetch/1M takes
under 2 s on the development machine)."""


def test_a_throttled_fetch_waits_out_a_backfills_queue() -> None:
    """`backfill --concurrency 20` starts 20 fetches against a reserved concurrency of 2: the
    last one waits for 9 rounds of fetches. Its retries' waits fall short of that with a
    probability below 1 in 1,000 (and a rerun of the backfill picks up an instant that fails)."""
    reserved = SIZING["fetch"].reserved_concurrency
    assert reserved is not None
    queue_s = math.ceil(MAX_CONCURRENCY / reserved - 1) * FETCH_S
    entry = retrier("fetch", "Lambda.TooManyRequestsException")
    assert probability_below(wait_caps(entry), Fraction(queue_s)) < Fraction(1, 1000)
