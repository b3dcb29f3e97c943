"""End to end: data problems are outcomes, not failures.

Each test writes one problem that real arenas produce (``local.bad_data``) into a fresh clone of
the simulated arena and runs the deployed definition over it (``local.pipeline``). Whatever the
data of one leaderboard is, it ends published or skipped with a reason naming the problem; the
other leaderboards publish as the ranking engine says (recomputed independently, with the rows
fetch must leave out written out in SQL in ``tests.e2e_fixtures``); the execution succeeds and
Slack lists the skips and the left-out votes. Faults of configuration still fail the execution,
at Fetch, with a named error. A run that publishes nothing says so and does not feed the
missed-day alarm's metric.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from cli.report import published_results, slack_preview
from common.stepfunctions.failures import failure_point
from infra import stack_template
from local import bad_data
from local.pipeline import LocalPipeline
from local.store import ExecutionRecord
from tests.e2e_fixtures import (
    RANKED,
    SPARSE,
    TEMPLATE_CACHE,
    SnapshotView,
    deployed_settings,
    e2e_arena,
    e2e_db,
    e2e_template,
    engine_snapshot,
    expected,
    missed_day_metric_sum,
    pipeline,
    run_request,
    slack_sections,
    snapshots_in,
)
from tests.stage_fixtures import RUN_AT, SEED_NOW

__all__ = ["e2e_arena", "e2e_db", "e2e_template", "expected"]

Template = dict[str, Any]
Expected = dict[str, SnapshotView]
IDENTIFIER = "snapshot_2025-06-01_06-00-00"


def _run(running: LocalPipeline, name: str, leaderboards: Any) -> ExecutionRecord:
    return running.wait(running.start(run_request(leaderboards=leaderboards), name))


def _carried(record: ExecutionRecord) -> dict[str, Any]:
    """What the state machine hands to Notify: fetch's result with the Map's results."""
    for event in record.history:
        details = event.get("stateEnteredEventDetails") or {}
        if event["type"] == "TaskStateEntered" and details.get("name") == "Notify":
            return dict(json.loads(details["input"]))
    raise AssertionError(f"{record.name} never reached Notify")


def _only_message(running: LocalPipeline) -> dict[str, Any]:
    assert running.slack is not None
    (message,) = running.slack.received
    return message


# --- leaderboards whose votes rank nobody ---------------------------------------------------------
NOTHING_RANKED = {
    "no-upsets": "no model could be ranked: no group of models both won and lost against each"
    " other (4 models, 40 votes)",
    "thin-evidence": "no model could be ranked: the 3 models that can be compared have fewer than"
    " 10 evaluations each (11 models, 33 votes)",
}


@pytest.mark.parametrize("problem", sorted(NOTHING_RANKED))
def test_a_leaderboard_whose_votes_rank_nobody_is_skipped_and_the_others_publish(
    problem: str, e2e_template: Template, e2e_db: str, tmp_path: Path
) -> None:
    assert bad_data.write_bad_data(e2e_db, problem, now=SEED_NOW)
    boards = ["overall", "genetics", problem]
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        record = _run(running, f"e2e-nothing-ranked-{problem}", boards)
        message = _only_message(running)
    assert record.status == "SUCCEEDED", record.error
    min_evals = deployed_settings(e2e_template).min_evals
    assert snapshots_in(e2e_db) == {
        slug: [engine_snapshot(e2e_db, slug, RUN_AT, min_evals=min_evals)]
        for slug in ("genetics", "overall")
    }
    results, skipped = published_results(record.history)
    assert sorted(r["slug"] for r in results) == ["genetics", "overall"]
    assert skipped == [{"slug": problem, "reason": NOTHING_RANKED[problem]}]
    assert sorted(slack_sections(message)) == ["genetics", "overall"]
    preview = slack_preview(message)
    assert message["text"].startswith("Leaderboard snapshot published")
    assert f"*Skipped (1)*\n• {problem}: {NOTHING_RANKED[problem]}" in preview
    assert missed_day_metric_sum(e2e_template, tmp_path / "functions.jsonl") == 2


# --- bad rows -------------------------------------------------------------------------------------
LEFT_OUT = {
    "self-battle": "a model faces itself",
    "vanished-model": "names a model not in api.model",
}


@pytest.mark.parametrize("problem", sorted(LEFT_OUT))
def test_bad_rows_are_left_out_counted_per_reason_and_every_leaderboard_publishes(
    problem: str, e2e_template: Template, e2e_db: str, expected: Expected, tmp_path: Path
) -> None:
    assert bad_data.write_bad_data(e2e_db, problem, now=SEED_NOW)
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        record = _run(running, f"e2e-bad-rows-{problem}", list(RANKED))
        message = _only_message(running)
    assert record.status == "SUCCEEDED", record.error
    # The row is left out, so every leaderboard publishes what the clean arena gives.
    assert snapshots_in(e2e_db) == {slug: [expected[slug]] for slug in RANKED}
    reason = LEFT_OUT[problem]
    assert _carried(record)["left_out"] == [
        {"slug": "overall", "reason": reason, "count": 1},
        {"slug": "genetics", "reason": reason, "count": 1},
    ]
    assert published_results(record.history)[1] == []
    preview = slack_preview(message)
    assert f"*Votes left out*\n• {reason}: 1 in overall, 1 in genetics" in preview
    assert sorted(slack_sections(message)) == sorted(RANKED)


def test_a_model_with_an_empty_name_is_published_and_shown_by_its_slug(
    e2e_template: Template, e2e_db: str, expected: Expected, tmp_path: Path
) -> None:
    assert bad_data.write_bad_data(e2e_db, "nameless-model", now=SEED_NOW)
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        record = _run(running, "e2e-nameless-model", ["overall"])
        message = _only_message(running)
    assert record.status == "SUCCEEDED", record.error
    (stored,) = snapshots_in(e2e_db)["overall"]
    renamed = [e.model for e in expected["overall"].entries if e.model == "SimModel 000"]
    assert renamed, "the arena's first model should be ranked in overall"
    assert [e.model for e in stored.entries] == [
        "" if e.model == "SimModel 000" else e.model for e in expected["overall"].entries
    ]
    shown = [e.model for e in expected["overall"].entries[:5]]
    overall = slack_sections(message)["overall"]
    if "SimModel 000" in shown:
        assert "*sim-model-000*" in overall
    (result,) = published_results(record.history)[0]
    assert [t["model"] for t in result["top"]] == [
        "sim-model-000" if e.model == "SimModel 000" else e.model
        for e in expected["overall"].entries[:10]
    ]


# --- leaderboard rows our contract cannot carry ---------------------------------------------------
UNUSABLE = [
    {
        "slug": "Genomics",
        "reason": "slug is not one our contract carries (a-z, 0-9 and '-', at most 100 characters)",
    },
    {
        "slug": "cancer_biology",
        "reason": "slug is not one our contract carries (a-z, 0-9 and '-', at most 100 characters)",
    },
    {"slug": "no-name", "reason": "name is empty"},
]


def test_leaderboard_rows_our_contract_cannot_carry_are_skipped_when_all_are_selected(
    e2e_template: Template, e2e_db: str, expected: Expected, tmp_path: Path
) -> None:
    assert bad_data.write_bad_data(e2e_db, "unusable-leaderboards", now=SEED_NOW)
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        record = _run(running, "e2e-unusable-leaderboards", "all")
        message = _only_message(running)
    assert record.status == "SUCCEEDED", record.error
    results, skipped = published_results(record.history)
    assert [s for s in skipped if s["slug"] in {u["slug"] for u in UNUSABLE}] == UNUSABLE
    stored = snapshots_in(e2e_db)
    assert {slug: found for slug, found in stored.items() if slug in RANKED} == {
        slug: [expected[slug]] for slug in RANKED
    }
    assert sorted(stored) == sorted(r["slug"] for r in results)
    assert not {u["slug"] for u in UNUSABLE} & set(stored)
    preview = slack_preview(message)
    for item in UNUSABLE:
        assert f"• {item['slug']}: {item['reason']}" in preview


# --- a run that publishes nothing -----------------------------------------------------------------
def test_a_run_that_publishes_nothing_says_so_and_does_not_count_as_a_published_day(
    e2e_template: Template, e2e_db: str, tmp_path: Path
) -> None:
    assert bad_data.write_bad_data(e2e_db, "no-upsets", now=SEED_NOW)
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        record = _run(running, "e2e-nothing-published", [SPARSE, "no-upsets"])
        message = _only_message(running)
    assert record.status == "SUCCEEDED", record.error
    assert snapshots_in(e2e_db) == {}
    assert message["text"].startswith("Leaderboard run published nothing")
    preview = slack_preview(message)
    assert "No leaderboard was published" in preview
    assert f"• {SPARSE}: fewer than 30 battles (0)" in preview
    assert f"• no-upsets: {NOTHING_RANKED['no-upsets']}" in preview
    assert missed_day_metric_sum(e2e_template, tmp_path / "functions.jsonl") == 0


# --- reproducing it all from the command line ------------------------------------------------------
def test_the_command_line_writes_every_data_problem_and_the_run_reports_each(
    e2e_template: Template, e2e_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI keeps its template cache in its state dir: give it the session's, not a synthesis.
    shutil.copytree(TEMPLATE_CACHE / "templates", tmp_path / "templates")
    simulate = ["simulate", "--database-url", e2e_db, "--models", "12", "--battles", "50"]
    assert main([*simulate, "--with-bad-data"]) == 0
    written = capsys.readouterr().out
    for problem in bad_data.PROBLEMS:
        assert f"  data problem {problem}: " in written
    assert main([*simulate, "--with-bad-data"]) == 0
    assert "data problem" not in capsys.readouterr().out, "a second time adds nothing"

    run = ["run", "--database-url", e2e_db, "--state-dir", str(tmp_path), "--bootstrap", "20"]
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "execution SUCCEEDED" in out
    for slug, reason in NOTHING_RANKED.items():
        assert f"  skipped {slug}: {reason}\n" in out
    for item in UNUSABLE:
        assert f"  skipped {item['slug']}: {item['reason']}\n" in out
    for slug in ("overall", "genetics"):
        for reason in LEFT_OUT.values():
            assert f"  left out of {slug}: 1 vote(s), {reason}\n" in out
    assert re.search(r"^\s*\d+  sim-model-000\s", out, re.M), "the nameless model, by its slug"
    assert "*Votes left out*" in out and "*Skipped (" in out
    stored = snapshots_in(e2e_db)
    assert "overall" in stored and not set(stored) & {"no-upsets", "thin-evidence", "no-name"}

    to_file = ["simulate", "--output", str(tmp_path / "votes.parquet"), "--with-bad-data"]
    assert main(to_file) == 2
    assert "--with-bad-data writes rows into a database" in capsys.readouterr().err


# --- configuration faults fail the run, naming the field ------------------------------------------
def _with_filters(template: Template, filters: dict[str, Any]) -> Template:
    """The template with LEADERBOARD_FILTERS set on the fetch function (as an operator editing
    the function's environment would, past the synth-time check)."""
    changed = copy.deepcopy(template)
    for logical_id, spec in stack_template.functions(changed).items():
        if spec.handler == "stages.fetch.handler.handler":
            variables = changed["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
            variables["LEADERBOARD_FILTERS"] = json.dumps(filters)
    return changed


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"window_days": 10**6}, "LEADERBOARD_FILTERS: window_days: expected null or an integer"),
        (
            {"leaderboards": {"overal": {"window_days": 30}}},
            "LEADERBOARD_FILTERS: leaderboards.overal: no leaderboard has this slug",
        ),
    ],
)
def test_a_filter_configuration_fault_fails_at_fetch_naming_the_field(
    filters: dict[str, Any], message: str, e2e_template: Template, e2e_db: str, tmp_path: Path
) -> None:
    with pipeline(_with_filters(e2e_template, filters), e2e_db, tmp_path) as running:
        record = _run(running, "e2e-bad-filters", list(RANKED))
    assert (record.status, record.error) == ("FAILED", "ConfigurationError")
    point = failure_point(record.history)
    assert point.state == "Fetch"
    assert message in str(record.cause)
    assert snapshots_in(e2e_db) == {}
