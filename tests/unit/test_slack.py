"""Slack messages (golden checks, limits, plain text for SNS) and webhook delivery errors."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from common import slack
from common.contracts import REFERENCE_LEADERBOARDS, PublishResult, parse_notify_event
from common.errors import ConfigurationError, InvalidInput, SlackRejected, SlackUnavailable
from common.stepfunctions.failures import FailureReport
from local.slack_server import SlackServer, block_problems
from tests.notify_events import NOW, entry, notify_event, result


def _texts(message: slack.SlackMessage) -> list[str]:
    out = []
    for block in message["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", [])]
    return out


# --- success message -------------------------------------------------------------------------------
def test_success_message_golden() -> None:
    message = slack.success_message(notify_event(), now=NOW, environment="prod")
    assert block_problems(message) == []
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "divider", "section", "section", "section", "context"]
    assert message["blocks"][0]["text"]["text"] == "🏆 Leaderboard snapshot published (prod)"
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert fields == [
        "*Snapshot*\n`snapshot_2025-06-01_03-00-00`",
        "*Visibility*\npublic",
        "*Trigger*\nmanual by alice@example.org",
        "*Run time*\n4m 12s",
        "*Leaderboards*\n2 ranked · 1 skipped",
        "*Votes*\n5,321",
    ]
    assert message["blocks"][3]["text"]["text"] == (
        "*overall* — 5,000 votes · 12 ranked models · vs `snapshot_2025-05-31_03-00-00`\n"
        "1. *gpt-4o*  1123.4 (95% CI [1111.2, 1135.2])  ↑2\n"
        "2. *claude-3-opus*  1101.0 (95% CI [1088.8, 1112.8])  ↓1\n"
        "3. *llama-3-70b*  1050.5 (95% CI [1038.2, 1062.2])  new\n"
        "4. *mixtral-8x7b*  990.0 (95% CI [977.8, 1001.8])  =\n"
        "New: llama-3-70b\n"
        "Dropped: palm-2"
    )
    assert message["blocks"][4]["text"]["text"] == (
        "*genetics* — 321 votes · 12 ranked models · first public snapshot\n"
        "1. *gpt-4o*  1080.0 (95% CI [1067.8, 1091.8])"
    )
    assert message["blocks"][5]["text"]["text"] == (
        "*Skipped (1)*\n• immunology: fewer than 30 battles (12)"
    )
    assert [e["text"] for e in message["blocks"][6]["elements"]] == [
        "run `20250601T030000Z-run-1`",
        "execution `run-1`",
        "correlation id `corr-123`",
    ]
    assert message["text"] == (
        "Leaderboard snapshot published (prod): snapshot_2025-06-01_03-00-00 (2 ranked, 1 skipped,"
        " manual by alice@example.org, run time 4m 12s). Top models: overall: gpt-4o; genetics:"
        " gpt-4o."
    )


def test_scheduled_private_run_awaits_review_with_the_commands_that_publish() -> None:
    results = [
        result("overall", [entry("a", 1, 1000.0, 1)], visibility="private"),
        result("genetics", [entry("b", 1, 990.0, None)], previous=None, visibility="private"),
    ]
    event = notify_event(results, [], trigger="scheduled", requested_by=None)
    message = slack.success_message(event, now=NOW)
    assert block_problems(message) == []
    texts = _texts(message)
    assert message["blocks"][0]["text"]["text"] == "👀 Leaderboard snapshot awaits review"
    assert message["text"].startswith("Leaderboard snapshot awaits review: snapshot_2025-06-01")
    assert "*Trigger*\nscheduled" in texts
    assert "*Visibility*\nprivate" in texts
    assert not any("Skipped" in t for t in texts)
    assert slack.published_count(event) == 0
    assert message["blocks"][3]["text"]["text"] == slack.NOTHING_LIVE
    assert message["blocks"][4]["text"]["text"] == (
        "*overall* — 1,234 votes · 12 ranked models · vs `snapshot_2025-05-31_03-00-00` · private\n"
        "Private, awaiting review: BixArena shows `snapshot_2025-05-31_03-00-00` for overall until"
        " it is published. Publish: `leaderboard snapshots publish id-overall`\n"
        "1. *a*  1000.0 (95% CI [987.8, 1011.8])  ="
    )
    assert message["blocks"][5]["text"]["text"] == (
        "*genetics* — 1,234 votes · 12 ranked models · none public before it · private\n"
        "Private, awaiting review: genetics has no public snapshot, publishing makes it live."
        " Publish: `leaderboard snapshots publish id-genetics`\n"
        "1. *b*  990.0 (95% CI [977.8, 1001.8])"
    )
    assert message["blocks"][6]["text"]["text"] == (
        "*Awaiting review (2)*: overall, genetics\n"
        "Review: `leaderboard snapshots show snapshot_2025-06-01_03-00-00 --leaderboard SLUG`\n"
        "Publish: `leaderboard snapshots publish snapshot_2025-06-01_03-00-00 --leaderboard SLUG`"
        " (or by id, as above)"
    )
    plain = slack.success_plain(event, now=NOW)
    assert plain["subject"] == ("Leaderboard snapshot awaits review: snapshot_2025-06-01_03-00-00")
    assert "Publish: leaderboard snapshots publish id-overall" in plain["body"]
    assert "`" not in plain["body"]


def test_a_run_with_older_votes_is_published_as_history_and_changes_nothing_shown() -> None:
    newer = "snapshot_2025-06-02_03-00-00"
    results = [
        result("overall", [entry("a", 1, 1000.0, 2)], shown=newer, superseded=True),
        result(
            "genetics", [entry("b", 1, 990.0, None)], previous=None, shown=newer, superseded=True
        ),
    ]
    event = notify_event(results, [])
    message = slack.success_message(event, now=NOW, environment="prod")
    assert block_problems(message) == []
    assert message["blocks"][0]["text"]["text"] == (
        "📚 Leaderboard snapshot published as history (prod)"
    )
    assert "*Visibility*\npublic, as history" in _texts(message)
    assert slack.published_count(event) == 0
    assert message["blocks"][3]["text"]["text"] == slack.NOTHING_LIVE
    assert message["blocks"][4]["text"]["text"] == (
        "*overall* — 1,234 votes · 12 ranked models · vs `snapshot_2025-05-31_03-00-00` · history\n"
        "Published as history: overall already shows `snapshot_2025-06-02_03-00-00` with newer"
        " votes; BixArena did not change.\n"
        "1. *a*  1000.0 (95% CI [987.8, 1011.8])  ↑1"
    )
    assert message["blocks"][5]["text"]["text"].startswith(
        "*genetics* — 1,234 votes · 12 ranked models · none public before it · history\n"
    )
    plain = slack.success_plain(event, now=NOW)
    assert (
        "Published as history: overall already shows snapshot_2025-06-02_03-00-00 with newer"
        " votes; BixArena did not change." in plain["body"]
    )


def test_a_run_mixing_live_history_and_private_counts_only_what_went_live() -> None:
    results = [
        result("overall", [entry("a", 1, 1000.0, 1)]),
        result(
            "genetics",
            [entry("b", 1, 990.0, 1)],
            shown="snapshot_2025-06-02_03-00-00",
            superseded=True,
        ),
        result("immunology", [entry("c", 1, 980.0, 1)], visibility="private"),
    ]
    event = notify_event(results, [])
    message = slack.success_message(event, now=NOW)
    assert message["blocks"][0]["text"]["text"] == "🏆 Leaderboard snapshot published"
    texts = _texts(message)
    assert "*Visibility*\n1 public, 1 as history, 1 private" in texts
    assert slack.published_count(event) == 1
    assert slack.NOTHING_LIVE not in texts
    assert [t.split("\n")[1][:22] for t in texts if t.startswith("*genetics*")] == [
        "Published as history: "
    ]
    assert any(t.startswith("*Awaiting review (1)*: immunology") for t in texts)


def test_a_result_from_before_the_placement_fields_reads_as_shown_when_public() -> None:
    raw: dict[str, Any] = dict(notify_event())
    old = [
        {k: v for k, v in r.items() if k not in ("shown_snapshot_identifier", "superseded")}
        for r in raw["results"]
    ]
    old[1]["visibility"] = "private"
    event = parse_notify_event({**raw, "results": old})
    assert [(r["shown_snapshot_identifier"], r["superseded"]) for r in event["results"]] == [
        ("snapshot_2025-06-01_03-00-00", False),
        (None, False),
    ]


@pytest.mark.parametrize(
    ("visibility", "shown", "superseded"),
    [
        ("public", None, False),
        ("public", "snapshot_2025-06-01_03-00-00", True),
        ("public", "snapshot_2025-06-02_03-00-00", False),
        ("private", "snapshot_2025-06-01_03-00-00", False),
        ("private", None, True),
    ],
)
def test_a_placement_that_contradicts_the_visibility_is_refused(
    visibility: str, shown: str | None, superseded: bool
) -> None:
    raw: dict[str, Any] = dict(notify_event())
    bad = {
        **raw["results"][0],
        "visibility": visibility,
        "shown_snapshot_identifier": shown,
        "superseded": superseded,
    }
    with pytest.raises(InvalidInput, match=r"^results\[0\]\.shown_snapshot_identifier: "):
        parse_notify_event({**raw, "results": [bad]})


def test_manual_trigger_without_a_name() -> None:
    message = slack.success_message(notify_event(requested_by=None), now=NOW)
    assert "*Trigger*\nmanual" in _texts(message)


def test_a_run_that_published_nothing_says_so_plainly() -> None:
    message = slack.success_message(notify_event([], None), now=NOW)
    assert block_problems(message) == []
    assert message["blocks"][0]["text"]["text"] == "⚠️ Leaderboard run published nothing"
    assert message["text"].startswith("Leaderboard run published nothing: snapshot_2025-06-01")
    texts = _texts(message)
    assert "*Visibility*\nnothing published" in texts
    assert slack.NOTHING_PUBLISHED in texts
    assert "*Skipped (1)*\n• immunology: fewer than 30 battles (12)" in texts
    plain = slack.success_plain(notify_event([], None), now=NOW)
    assert plain["subject"].startswith("Leaderboard run published nothing")
    assert slack.NOTHING_PUBLISHED in plain["body"]


def test_skips_of_the_map_and_votes_left_out_are_listed_with_their_reasons() -> None:
    raw: dict[str, Any] = dict(notify_event())
    raw["results"] = [
        raw["results"][0],
        {"slug": "no-upsets", "reason": "no model could be ranked: no group"},
        raw["results"][1],
    ]
    raw["left_out"] = [
        {"slug": "overall", "reason": "a model faces itself", "count": 2},
        {"slug": "overall", "reason": "names a model not in api.model", "count": 1},
        {"slug": "genetics", "reason": "a model faces itself", "count": 1200},
    ]
    event = parse_notify_event(raw)
    assert [r["slug"] for r in event["results"]] == ["overall", "genetics"]
    assert event["skipped"] == [
        {"slug": "immunology", "reason": "fewer than 30 battles (12)"},
        {"slug": "no-upsets", "reason": "no model could be ranked: no group"},
    ]
    message = slack.success_message(event, now=NOW)
    assert block_problems(message) == []
    assert message["blocks"][5]["text"]["text"] == (
        "*Skipped (2)*\n"
        "• immunology: fewer than 30 battles (12)\n"
        "• no-upsets: no model could be ranked: no group\n"
        "*Votes left out*\n"
        "• a model faces itself: 2 in overall, 1,200 in genetics\n"
        "• names a model not in api.model: 1 in overall"
    )
    assert "*Leaderboards*\n2 ranked · 2 skipped" in _texts(message)
    assert slack.published_count(event) == 2
    assert "Votes left out" in slack.success_plain(event, now=NOW)["body"]


def test_a_skip_may_name_a_slug_our_contract_cannot_carry() -> None:
    skipped = [{"slug": "", "reason": "slug is not one our contract carries"}]
    event = notify_event(skipped=skipped)
    assert event["skipped"] == skipped and event["left_out"] == []
    assert "*Skipped (1)*\n• (empty slug): slug is not one our contract carries" in _texts(
        slack.success_message(event, now=NOW)
    )


def test_mrkdwn_control_characters_are_escaped() -> None:
    results = [result("overall", [entry("<!channel> & co", 1, 1000.0, 1)])]
    section = slack.success_message(notify_event(results), now=NOW)["blocks"][3]["text"]["text"]
    assert "*&lt;!channel&gt; &amp; co*" in section
    assert "<!channel>" not in section


def _many(count: int, top: int = 10) -> list[PublishResult]:
    long = "a-model-with-a-very-long-name-" * 8
    return [
        result(
            f"board-{i:03d}",
            [entry(f"{long}{j}", j + 1, 1000.0 - j, j + 2) for j in range(top)],
            new=[f"new-{k}-{long}" for k in range(40)],
            dropped=[f"old-{k}" for k in range(40)],
        )
        for i in range(count)
    ]


def test_many_leaderboards_are_truncated_within_slack_limits() -> None:
    skipped = [{"slug": f"skip-{i}", "reason": "fewer than 30 battles " * 10} for i in range(100)]
    event = notify_event(_many(100), skipped)
    message = slack.success_message(event, now=NOW)
    assert block_problems(message) == []
    assert len(message["blocks"]) <= 50
    assert slack.blocks_text(message["blocks"]) <= slack.MAX_MESSAGE_TEXT
    sections = [b["text"]["text"] for b in message["blocks"] if "text" in b]
    detailed = [s for s in sections if s.startswith("*board-")]
    # Each of these sections holds ~1,000 characters: the message's text, not its block count,
    # decides how many are detailed.
    assert 1 <= len(detailed) < slack.DETAILED_LEADERBOARDS - 1
    more = next(s for s in sections if s.startswith("… and "))
    assert more.startswith(
        f"… and {100 - len(detailed)} more leaderboards: board-{len(detailed):03d} (1,234 votes)"
    )
    assert all(s.count("\n") <= 1 + slack.TOP_MODELS + 2 for s in detailed)
    assert "New: " in detailed[0] and "and 30 more" in detailed[0]
    skipped_section = next(s for s in sections if s.startswith("*Skipped (100)*"))
    assert skipped_section.endswith("more lines")
    assert len(message["text"]) <= slack.FALLBACK_TEXT_LIMIT


def test_block_budget_holds_whatever_the_detail_asked_for() -> None:
    short = [result(f"board-{i:03d}", [entry("m", 1, 1000.0, 2)]) for i in range(100)]
    message = slack.success_message(notify_event(short), now=NOW, max_leaderboards=500)
    assert block_problems(message) == []
    assert len(message["blocks"]) == 50


def test_all_of_bixarenas_leaderboards_fit_slacks_limit_on_a_message_s_text() -> None:
    """Every reference leaderboard with its top models, moves, new and dropped models and style
    control: each block keeps its own limit, but together they held 13,185 characters, which
    Slack refuses (msg_blocks_too_long)."""
    names = ["claude-3-5-sonnet-20241022", "gpt-4o-2024-08-06", "gemini-1.5-pro-002"]
    results = []
    for slug in REFERENCE_LEADERBOARDS:
        board = result(
            slug,
            [entry(f"{names[j % 3]}-{j}", j + 1, 1100.0 - 10 * j, j + 2) for j in range(10)],
            new=names[:2],
            dropped=["gpt-3.5-turbo"],
            votes=12345,
        )
        board["style"] = {
            "entries_uri": "s3://bucket-a/k/entries.parquet", "reason": None, "ranked_count": 10,
            "votes_used": 12000, "votes_left_out": 0, "votes_without_style": 345,
            "effects": [{"feature": "length", "elo": 35.2, "elo_q025": 30.1, "elo_q975": 40.3}],
            "shifts": [
                {"model": names[k], "plain_rank": k + 1, "style_rank": k + 2} for k in range(3)
            ],
        }  # fmt: skip
        board["style_board"] = {
            "slug": f"{slug}-style", "snapshot_id": "x", "created": True, "skipped": None,
        }  # fmt: skip
        results.append(board)
    message = slack.success_message(notify_event(results), now=NOW, environment="prod")
    assert block_problems(message) == []
    assert slack.blocks_text(message["blocks"]) <= slack.MAX_MESSAGE_TEXT
    sections = [b["text"]["text"] for b in message["blocks"] if "text" in b]
    detailed = [s for s in sections if s.startswith("*") and "votes" in s.split("\n")[0]]
    more = next(s for s in sections if s.startswith("… and "))
    assert more.startswith(f"… and {len(REFERENCE_LEADERBOARDS) - len(detailed)} more")


def test_plain_text_for_sns_lists_every_leaderboard() -> None:
    plain = slack.success_plain(notify_event(_many(60, top=2)), now=NOW, environment="prod")
    assert plain["subject"] == (
        "Leaderboard snapshot published (prod): snapshot_2025-06-01_03-00-00"
    )
    body = plain["body"]
    assert all(f"board-{i:03d} — 1,234 votes" in body for i in range(60))
    assert "*" not in body and "`" not in body
    assert "Trigger: manual by alice@example.org" in body


def test_subject_line_is_ascii_one_line_and_short() -> None:
    subject = slack.subject_line("🏆 Résumé\nof a run " + "x" * 200)
    assert subject.isascii() and "\n" not in subject
    assert len(subject) <= 99 and subject.endswith("...")
    assert subject.startswith("Rsum of a run")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.9, "42s"), (252, "4m 12s"), (3780, "1h 03m"), (187_200, "2d 04h"), (-5, "0s")],
)
def test_duration(seconds: float, text: str) -> None:
    assert slack.duration(seconds) == text


@pytest.mark.parametrize(
    ("previous", "has_previous", "text"),
    [(5, True, "↑2"), (2, True, "↓1"), (3, True, "="), (None, True, "new"), (None, False, "")],
)
def test_movement(previous: int | None, has_previous: bool, text: str) -> None:
    assert slack.movement(entry("m", 3, 1000.0, previous), has_previous) == text


def test_run_time_uses_started_at_when_given() -> None:
    event = notify_event()
    event["started_at"] = (NOW - timedelta(seconds=42)).isoformat()
    assert slack.run_seconds(event, NOW) == 42


def test_invalid_notify_event_names_the_field() -> None:
    raw: dict[str, Any] = dict(notify_event())
    raw["results"] = [dict(raw["results"][0], top=[dict(raw["results"][0]["top"][0], rank="1")])]
    with pytest.raises(InvalidInput, match=r"results\[0\]\.top\[0\]\.rank"):
        parse_notify_event(raw)
    with pytest.raises(InvalidInput, match=r"^mode: expected 'success'"):
        parse_notify_event({**raw, "mode": "failure"})
    run = {k: v for k, v in raw["run"].items() if k != "snapshot_identifier"}
    with pytest.raises(InvalidInput, match=r"^run\.snapshot_identifier: missing"):
        parse_notify_event({**raw, "run": run})
    with pytest.raises(InvalidInput, match=r"^run\.run_at: timestamp must carry a time zone"):
        parse_notify_event({**raw, "run": {**raw["run"], "run_at": "2025-06-01T03:00:00"}})
    raw = dict(notify_event())
    with pytest.raises(InvalidInput, match=r"^results\[1\]\.reason: expected a string"):
        parse_notify_event({**raw, "results": [raw["results"][0], {"slug": "x", "reason": 3}]})
    left_out = {"slug": "overall", "reason": "a model faces itself", "count": 0}
    with pytest.raises(InvalidInput, match=r"^left_out\[0\]\.count: expected a positive"):
        parse_notify_event({**raw, "left_out": [left_out]})
    with pytest.raises(InvalidInput, match=r"^left_out\[0\]\.slug: expected a leaderboard"):
        parse_notify_event({**raw, "left_out": [{**left_out, "slug": "Overall", "count": 1}]})
    with pytest.raises(InvalidInput, match=r"^skipped\[0\]: unknown field\(s\) stage"):
        parse_notify_event({**raw, "skipped": [{"slug": "a", "reason": "b", "stage": "rank"}]})
    # A result's slug reaches mrkdwn unescaped (a-z, 0-9, -): anything else is refused.
    shouting = dict(raw["results"][0], slug="<!channel>")
    with pytest.raises(InvalidInput, match=r"^results\[0\]\.slug: expected a leaderboard slug"):
        parse_notify_event({**raw, "results": [shouting]})


# --- failure message -------------------------------------------------------------------------------
def report(**overrides: Any) -> FailureReport:
    values: dict[str, Any] = {
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:sm:run-3",
        "execution_name": "run-3",
        "state_machine_name": "sm",
        "status": "FAILED",
        "region": "us-east-1",
        "started_at": NOW - timedelta(minutes=3),
        "stopped_at": NOW,
        "state": "Publish",
        "map_state": None,
        "iteration": None,
        "leaderboard": None,
        "error": "DatabaseUnavailable",
        "cause": "DatabaseUnavailable: cannot connect to PostgreSQL",
        "correlation_id": None,
        "trigger": "scheduled",
        "requested_by": None,
        "history_available": True,
    }
    return FailureReport(**(values | overrides))


def test_failure_message_fallback_text_and_blocks() -> None:
    message = slack.failure_message(report())
    assert message["text"] == (
        "Leaderboard run failed at Publish: run-3 — DatabaseUnavailable: cannot connect to PostgreSQL"
    )
    assert block_problems(message) == []
    texts = _texts(message)
    assert "*Trigger*\nscheduled" in texts and "*Ran for*\n3m 00s" in texts
    assert not any(t.startswith("*Leaderboard*") for t in texts)


def test_failure_message_of_an_aborted_run_without_error_or_history() -> None:
    message = slack.failure_message(
        report(status="ABORTED", state=None, error=None, cause=None, history_available=False)
    )
    assert message["text"] == "Leaderboard run was aborted: run-3"
    texts = _texts(message)
    assert "*Error*\nnone given" in texts
    assert "*Failed state*\nunknown (history unavailable)" in texts
    assert not any(t.startswith("*Cause*") for t in texts)


def test_failure_message_escapes_and_fences_the_cause() -> None:
    cause = "bad <input> & ```fence``` " + "y" * 4000
    message = slack.failure_message(report(cause=cause))
    assert block_problems(message) == []
    section = next(t for t in _texts(message) if t.startswith("*Cause*"))
    assert "&lt;input&gt; &amp; '''fence'''" in section
    assert len(section) <= slack.MAX_SECTION_TEXT


# --- delivery --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[SlackServer]:
    with SlackServer() as running:
        yield running


@pytest.fixture
def slack_server(server: SlackServer) -> SlackServer:
    server.reset()
    return server


def test_post_delivers_text_and_blocks(slack_server: SlackServer) -> None:
    message = slack.success_message(notify_event(), now=NOW)
    slack.post(slack_server.url, message, timeout=5)
    assert slack_server.received == [message]


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("500", SlackUnavailable, "Slack answered 500: rollup_error"),
        ("503", SlackUnavailable, "Slack answered 503: service_unavailable"),
        ("429", SlackUnavailable, "rate-limited the webhook (429, retry after 1 s): rate_limited"),
        ("hang", SlackUnavailable, "Slack did not answer within 1 s"),
        ("404", SlackRejected, "Slack refused the message (404): no_service"),
        ("403", SlackRejected, "Slack refused the message (403): invalid_token"),
        ("400", SlackRejected, "Slack refused the message (400): invalid_payload"),
    ],
)
def test_post_maps_slack_failures_and_never_reveals_the_url(
    slack_server: SlackServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    error: type[Exception],
    text: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    slack_server.mode = mode
    with pytest.raises(error) as raised:
        slack.post(slack_server.url, slack.success_message(notify_event(), now=NOW), timeout=1)
    assert text in str(raised.value)
    assert slack_server.attempts == 1, "the client must not retry on its own"
    _assert_secret_absent(slack_server.secret, raised.value, caplog, capsys)


def test_unreachable_slack_is_transient(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    stopped = SlackServer().start()
    url, secret = stopped.url, stopped.secret
    stopped.stop()
    with pytest.raises(SlackUnavailable, match="could not be reached") as raised:
        slack.post(url, slack.success_message(notify_event(), now=NOW), timeout=1)
    _assert_secret_absent(secret, raised.value, caplog, capsys)


def test_a_message_over_slack_limits_is_refused_by_the_stand_in(slack_server: SlackServer) -> None:
    too_many = {"text": "x", "blocks": [{"type": "divider"}] * 51}
    with pytest.raises(SlackRejected, match="invalid_blocks"):
        slack.post(slack_server.url, too_many, timeout=5)  # type: ignore[arg-type]


def test_a_webhook_url_that_is_not_http_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        slack.post("ftp://hooks.example/services/T/B/ftp-secret-token", {"text": "x", "blocks": []})
    assert "ftp-secret-token" not in str(raised.value)


def _assert_secret_absent(
    secret: str,
    exc: BaseException,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    captured = capsys.readouterr()
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    for where, text in (
        ("exception", shown),
        ("log records", caplog.text),
        ("stdout", captured.out),
        ("stderr", captured.err),
    ):
        assert secret not in text, f"the webhook URL leaked into {where}"


# --- style control -----------------------------------------------------------------------------------
def _styled(
    base: PublishResult,
    *,
    reason: str | None = None,
    shifts: list[tuple[str, int, int]] | None = None,
    board: dict[str, Any] | None = None,
) -> PublishResult:
    """``base`` with a style-controlled ranking summary and, with ``board``, its mapped row."""
    styled: dict[str, Any] = dict(base)
    styled["style"] = {
        "entries_uri": None
        if reason
        else "s3://artifacts-bucket/runs/x/overall/style-entries.json",
        "reason": reason,
        "ranked_count": 0 if reason else 12,
        "votes_used": 0 if reason else 4800,
        "votes_left_out": 5000 if reason else 200,
        "votes_without_style": 5000 if reason else 150,
        "effects": []
        if reason
        else [
            {"feature": "length", "elo": 38.24, "elo_q025": 31.04, "elo_q975": 45.1},
            {"feature": "headers", "elo": 4.5, "elo_q025": -1.0, "elo_q975": 9.9},
            {"feature": "lists", "elo": None, "elo_q025": None, "elo_q975": None},
            {"feature": "bold", "elo": 2.0, "elo_q025": -3.0, "elo_q975": 7.0},
        ],
        "shifts": [
            {"model": m, "plain_rank": p, "style_rank": s}
            for m, p, s in (shifts if shifts is not None else [])
        ],
    }
    if board is not None:
        styled["style_board"] = board
    event = notify_event([styled])  # type: ignore[list-item]
    return event["results"][0]


def _published(slug: str = "overall-style-control") -> dict[str, Any]:
    return {"slug": slug, "snapshot_id": "id-style", "created": True, "skipped": None}


SHIFTS = [("gpt-4o-mini", 6, 11), ("claude-3-opus", 9, 4), ("grok-2-mini", 2, 5), ("x", 1, 2)]


def test_style_control_line_golden() -> None:
    styled = _styled(result("overall", [entry("gpt-4o", 1, 1123.4, 3)]), shifts=SHIFTS,
                     board=_published())  # fmt: skip
    event = notify_event([styled])
    message = slack.success_message(event, now=NOW, environment="prod")
    assert block_problems(message) == []
    assert message["blocks"][3]["text"]["text"] == (
        "*overall* — 1,234 votes · 12 ranked models · vs `snapshot_2025-05-31_03-00-00`\n"
        "1. *gpt-4o*  1123.4 (95% CI [1111.2, 1135.2])  ↑2\n"
        "Style control: length +38.2 Elo per SD (95% CI +31.0 to +45.1) · biggest shifts: "
        "*gpt-4o-mini* 6 → 11, *claude-3-opus* 9 → 4, *grok-2-mini* 2 → 5 · "
        "published as `overall-style-control`"
    )
    plain = slack.success_plain(event, now=NOW, environment="prod")["body"]
    assert (
        "Style control: length +38.2 Elo per SD (95% CI +31.0 to +45.1) · biggest shifts: "
        "gpt-4o-mini 6 → 11, claude-3-opus 9 → 4, grok-2-mini 2 → 5 · "
        "published as overall-style-control\n"
    ) in plain


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        (
            {"shifts": SHIFTS[:1]},
            "Style control: length +38.2 Elo per SD (95% CI +31.0 to +45.1) · biggest shifts: "
            "*gpt-4o-mini* 6 → 11 · reported only",
        ),
        (
            {"shifts": [], "board": {"slug": "overall-sc", "snapshot_id": None, "created": False,
                                     "skipped": "no leaderboard 'overall-sc' in api.leaderboard"}},
            "Style control: length +38.2 Elo per SD (95% CI +31.0 to +45.1) · no rank changes · "
            "not published as `overall-sc`: no leaderboard 'overall-sc' in api.leaderboard",
        ),
        (
            {"reason": "the votes carry no style counts",
             "board": {"slug": "overall-sc", "snapshot_id": None, "created": False,
                       "skipped": "no style-controlled ranking: the votes carry no style counts"}},
            "Style control: not published as `overall-sc`: no style-controlled ranking: the votes "
            "carry no style counts",
        ),
        ({"reason": "the votes carry no style counts"}, None),
        (
            {"shifts": [("<script>", 3, 1)], "board": _published()},
            "Style control: length +38.2 Elo per SD (95% CI +31.0 to +45.1) · biggest shifts: "
            "*&lt;script&gt;* 3 → 1 · published as `overall-style-control`",
        ),
    ],
)  # fmt: skip
def test_style_control_line_says_where_the_ranking_went(
    kwargs: dict[str, Any], line: str | None
) -> None:
    styled = _styled(result("overall", [entry("gpt-4o", 1, 1123.4, 3)]), **kwargs)
    assert slack.style_control_line(styled, slack.MRKDWN) == line
    section = slack.success_message(notify_event([styled]), now=NOW)["blocks"][3]["text"]["text"]
    assert section.endswith(line) if line else "Style control" not in section


def test_a_malformed_style_board_in_the_notify_event_is_refused() -> None:
    styled = dict(_styled(result("overall", []), board=_published()))
    styled["style_board"] = {**_published(), "skipped": "both"}
    with pytest.raises(InvalidInput, match=r"results\[0\]\.style_board: expected either"):
        notify_event([styled])  # type: ignore[list-item]
