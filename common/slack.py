"""The pipeline's messages (Slack Block Kit and plain text) and their delivery to a Slack webhook.

``success_message`` and ``failure_message`` are pure: event or report in, ``{text, blocks}`` out,
within Slack's limits (at most 50 blocks, section text at most 3000 characters, header at most
150, about 12,000 characters in all; long lists end with "and N more"). ``success_plain`` and
``failure_plain`` render the same content as a plain-text subject and body for SNS (subject
ASCII and under 100 characters, as SNS requires).

``post`` sends a message with slack-sdk's ``WebhookClient`` and names what went wrong: 429, 5xx,
timeouts and unreachable hosts raise ``SlackUnavailable`` (the state machine retries it), any
other refusal raises ``SlackRejected``. The webhook URL is a secret: the client's own logger is
silenced (it logs the URL on retries and at debug level), the client does not retry on its own, and
no message or exception chain carries the URL.
"""

from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict
from urllib.error import URLError

from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient

from common import standing
from common.contracts import NotifyEvent, PublishResult, RunContext, SummaryEntry, parse_timestamp
from common.errors import ConfigurationError, SlackRejected, SlackUnavailable
from common.movements import rank_change
from common.stepfunctions.failures import FailureReport, trim

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_SUBJECT = 99
"""SNS: "less than 100 characters"."""
SLACK_MESSAGE_TEXT = 12_000
"""Slack refuses a message whose blocks hold more text than about this, however each block keeps
its own limit (``msg_blocks_too_long``; undocumented: slackapi/bolt-js#2509 measured ~13,200
with markdown blocks, #2867 saw 11,341 refused once block containers were added)."""
MAX_MESSAGE_TEXT = 10_000
"""What a message is made to fit, below SLACK_MESSAGE_TEXT: fewer leaderboards are detailed
until it does."""
FALLBACK_TEXT_LIMIT = 3000
DEFAULT_TIMEOUT_S = 10
TOP_MODELS = 5
DETAILED_LEADERBOARDS = 20
"""Leaderboards shown with their top models; the rest are listed in one line."""
NAMES_LISTED = 10
"""New or dropped models named per leaderboard before "and N more"."""
STYLE_SHIFTS_SHOWN = 3
"""Rank shifts under style control named per leaderboard (the summary carries that many)."""


class SlackMessage(TypedDict):
    text: str
    blocks: list[dict[str, Any]]


class PlainMessage(TypedDict):
    subject: str
    body: str


# --- markup ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Style:
    """Slack mrkdwn, or plain text: the same content builders render both."""

    markup: bool

    def escape(self, text: str) -> str:
        if not self.markup:
            return text
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def bold(self, text: str) -> str:
        return f"*{self.escape(text)}*" if self.markup else text

    def code(self, text: str) -> str:
        return f"`{self.escape(text)}`" if self.markup else text

    def link(self, url: str, label: str) -> str:
        return f"<{url}|{self.escape(label)}>" if self.markup else f"{label} ({url})"

    def preformatted(self, text: str) -> str:
        if not self.markup:
            return text
        return "```" + self.escape(text).replace("```", "'''") + "```"


MRKDWN = _Style(markup=True)
PLAIN = _Style(markup=False)


@dataclass(frozen=True)
class _Header:
    text: str


@dataclass(frozen=True)
class _Fields:
    pairs: list[tuple[str, str]]


@dataclass(frozen=True)
class _Section:
    text: str


@dataclass(frozen=True)
class _Divider:
    pass


@dataclass(frozen=True)
class _Context:
    items: list[str]


_Part = _Header | _Fields | _Section | _Divider | _Context


def _blocks(parts: Sequence[_Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, _Header):
            text = {"type": "plain_text", "text": trim(part.text, MAX_HEADER_TEXT), "emoji": True}
            blocks.append({"type": "header", "text": text})
        elif isinstance(part, _Fields):
            fields = [
                {"type": "mrkdwn", "text": trim(f"*{label}*\n{value}", MAX_FIELD_TEXT)}
                for label, value in part.pairs[:MAX_FIELDS]
            ]
            blocks.append({"type": "section", "fields": fields})
        elif isinstance(part, _Section):
            text = {"type": "mrkdwn", "text": trim(part.text, MAX_SECTION_TEXT)}
            blocks.append({"type": "section", "text": text})
        elif isinstance(part, _Divider):
            blocks.append({"type": "divider"})
        else:
            elements = [
                {"type": "mrkdwn", "text": trim(item, MAX_FIELD_TEXT)}
                for item in part.items[:MAX_CONTEXT_ELEMENTS]
            ]
            blocks.append({"type": "context", "elements": elements})
    return blocks[:MAX_BLOCKS]


def _plain_body(parts: Sequence[_Part]) -> str:
    chunks: list[str] = []
    for part in parts:
        if isinstance(part, _Header):
            chunks.append(f"{part.text}\n{'=' * len(part.text)}")
        elif isinstance(part, _Fields):
            chunks.append("\n".join(f"{label}: {value}" for label, value in part.pairs))
        elif isinstance(part, _Section):
            chunks.append(part.text)
        elif isinstance(part, _Context):
            chunks.append(" | ".join(part.items))
    return "\n\n".join(chunks) + "\n"


def subject_line(text: str) -> str:
    """An SNS subject: ASCII, one line, under 100 characters."""
    ascii_only = text.encode("ascii", "ignore").decode()
    one_line = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", ascii_only).split())
    if len(one_line) <= MAX_SUBJECT:
        return one_line
    return one_line[: MAX_SUBJECT - 3].rstrip() + "..."


def _fit_lines(lines: list[str], limit: int = MAX_SECTION_TEXT) -> str:
    """Join lines, dropping the tail (with a count) rather than cutting through markup."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index - 1
        reserve = len(f"\n… and {rest} more lines") if rest else 0
        if used + len(line) + 1 + reserve > limit:
            kept.append(f"… and {len(lines) - index} more lines")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def _names(names: list[str], style: _Style, limit: int = NAMES_LISTED) -> str:
    shown = ", ".join(style.escape(trim(name, 80)) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- success ---------------------------------------------------------------------------------------
def duration(seconds: float) -> str:
    """A run time as people read it: 42s, 4m 05s, 1h 03m, 2d 04h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def trigger_text(trigger: str | None, requested_by: str | None) -> str:
    if trigger == "manual":
        return f"manual by {requested_by}" if requested_by else "manual"
    return trigger or "unknown"


def movement(entry: SummaryEntry, has_previous: bool) -> str:
    """Rank change against the previous public snapshot: ↑2, ↓1, = or new."""
    return rank_change(entry["rank"], entry["previous_rank"]) if has_previous else ""


def _visibility(results: list[PublishResult]) -> str:
    """How the run's snapshots stand: "public", "public, as history", "private" or counts."""
    counts = {"live": 0, "history": 0, "private": 0}
    for result in results:
        counts[standing.of_result(result).standing] += 1
    if counts["live"] == len(results):
        return "public"
    if counts["history"] == len(results):
        return "public, as history"
    if counts["private"] == len(results):
        return "private"
    labels = {"live": "public", "history": "as history", "private": "private"}
    return ", ".join(f"{n} {labels[kind]}" for kind, n in counts.items() if n)


def run_seconds(event: NotifyEvent, now: datetime) -> float:
    """Seconds from the run's start to ``now``: ``started_at`` when given, else ``run.run_at``."""
    started = event.get("started_at") or event["run"]["run_at"]
    field = "started_at" if event.get("started_at") else "run.run_at"
    return max(0.0, (now - parse_timestamp(started, field)).total_seconds())


def _leaderboard_section(result: PublishResult, style: _Style, top_n: int) -> str:
    has_previous = result["previous_snapshot_identifier"] is not None
    placed = standing.of_result(result)
    facts = [f"{result['vote_count']:,} votes", f"{result['entry_count']} ranked models"]
    if has_previous:
        facts.append(f"vs {style.code(str(result['previous_snapshot_identifier']))}")
    else:
        first = placed.standing == "live"
        facts.append("first public snapshot" if first else "none public before it")
    if placed.standing != "live":
        facts.append(placed.standing)
    if not result["created"]:
        facts.append("already existed")
    lines = [f"{style.bold(result['slug'])} — {' · '.join(facts)}"]
    if placed.standing != "live":
        lines.append(_standing_line(result, placed, style))
    for entry in sorted(result["top"], key=lambda e: e["rank"])[:top_n]:
        move = movement(entry, has_previous)
        lines.append(
            f"{entry['rank']}. {style.bold(trim(entry['model'], 120))}  "
            f"{entry['bt_score']:.1f} (95% CI [{entry['bootstrap_q025']:.1f}, "
            f"{entry['bootstrap_q975']:.1f}])" + (f"  {move}" if move else "")
        )
    if has_previous and result["new_models"]:
        lines.append(f"New: {_names(result['new_models'], style)}")
    if has_previous and result["dropped_models"]:
        lines.append(f"Dropped: {_names(result['dropped_models'], style)}")
    style_control = style_control_line(result, style)
    if style_control is not None:
        lines.append(style_control)
    return _fit_lines(lines)


def _standing_line(result: PublishResult, placed: standing.Placement, style: _Style) -> str:
    """A history or private snapshot in plain words; a private one with the command that
    publishes it."""
    words = standing.describe(placed, style.code)  # slugs are a-z, 0-9, - (parse_publish_result)
    text = words[:1].upper() + words[1:]
    if placed.standing == "history":
        return f"{text}; BixArena did not change."
    return f"{text}. Publish: {style.code(standing.publish_command(result['snapshot_id']))}"


def style_control_line(result: PublishResult, style: _Style) -> str | None:
    """The leaderboard's style control in one line: the length effect in Elo per SD, the biggest
    rank shifts, and where the style-controlled ranking went. Nothing for a leaderboard without
    one unless it is mapped (then why its style-controlled board was not published)."""
    summary, board = result.get("style"), result.get("style_board")
    if summary is None or (summary["reason"] is not None and board is None):
        return None
    parts: list[str] = []
    if summary["reason"] is None:
        length = next((e for e in summary["effects"] if e["feature"] == "length"), None)
        if length is not None and length["elo"] is not None:
            effect = f"length {length['elo']:+.1f} Elo per SD"
            if length["elo_q025"] is not None and length["elo_q975"] is not None:
                effect += f" (95% CI {length['elo_q025']:+.1f} to {length['elo_q975']:+.1f})"
            parts.append(effect)
        else:
            parts.append("length out of the fit")
        moves = [
            f"{style.bold(trim(s['model'], 80))} {s['plain_rank']} → {s['style_rank']}"
            for s in summary["shifts"][:STYLE_SHIFTS_SHOWN]
        ]
        parts.append(f"biggest shifts: {', '.join(moves)}" if moves else "no rank changes")
    if board is None:
        parts.append("reported only")
    elif board["skipped"] is None:
        parts.append(f"published as {style.code(board['slug'])}")
    else:
        parts.append(
            f"not published as {style.code(board['slug'])}: {style.escape(trim(board['skipped'], 300))}"
        )
    return "Style control: " + " · ".join(parts)


def _more_leaderboards(results: list[PublishResult], style: _Style) -> str:
    listed = ", ".join(f"{style.escape(r['slug'])} ({r['vote_count']:,} votes)" for r in results)
    return trim(f"… and {len(results)} more leaderboards: {listed}", MAX_SECTION_TEXT)


def _data_problems_section(event: NotifyEvent, style: _Style) -> str:
    """The skipped leaderboards with their reasons, then the votes left out per reason."""
    lines: list[str] = []
    if event["skipped"]:
        lines.append(style.bold(f"Skipped ({len(event['skipped'])})"))
        lines += [
            f"• {style.escape(s['slug'] or '(empty slug)')}: {style.escape(trim(s['reason'], 300))}"
            for s in event["skipped"]
        ]
    by_reason: dict[str, list[str]] = {}
    for item in event["left_out"]:
        by_reason.setdefault(item["reason"], []).append(
            f"{item['count']:,} in {style.escape(item['slug'])}"
        )
    if by_reason:
        lines.append(style.bold("Votes left out"))
        lines += [
            f"• {style.escape(reason)}: {', '.join(counts)}" for reason, counts in by_reason.items()
        ]
    return _fit_lines(lines)


NOTHING_PUBLISHED = (
    "No leaderboard was published: every selected leaderboard was skipped (reasons below). "
    "BixArena still shows the previous snapshots, and the missed-day alarm counts this run as "
    "no update."
)
NOTHING_LIVE = (
    "BixArena shows nothing new: every snapshot of this run is private or history (below), and "
    "the missed-day alarm counts this run as no update."
)


def published_count(event: NotifyEvent) -> int:
    """Leaderboards whose snapshot of this run BixArena shows (what the missed-day alarm counts):
    public, and not superseded by a public snapshot with newer votes."""
    return sum(1 for r in event["results"] if standing.of_result(r).standing == "live")


_TITLES = {
    "nothing": ("⚠️", "Leaderboard run published nothing"),
    "live": ("🏆", "Leaderboard snapshot published"),
    "history": ("📚", "Leaderboard snapshot published as history"),
    "private": ("👀", "Leaderboard snapshot awaits review"),
}


def _outcome(event: NotifyEvent) -> str:
    """The run's headline: a snapshot went live, else one joined the history, else awaits review."""
    kinds = {standing.of_result(r).standing for r in event["results"]}
    return next((kind for kind in ("live", "history", "private") if kind in kinds), "nothing")


def _success_title(event: NotifyEvent, environment: str | None) -> str:
    title = _TITLES[_outcome(event)][1]
    return f"{title} ({environment})" if environment else title


def _review_section(event: NotifyEvent, style: _Style) -> str:
    """How to review and publish the run's private snapshots by identifier (one for the run)."""
    private = [r["slug"] for r in event["results"] if r["visibility"] == "private"]
    identifier = event["run"]["snapshot_identifier"]
    show = f"leaderboard snapshots show {identifier} --leaderboard SLUG"
    publish = standing.publish_command_by_identifier(identifier, "SLUG")
    return _fit_lines(
        [
            f"{style.bold(f'Awaiting review ({len(private)})')}: {_names(private, style, 30)}",
            f"Review: {style.code(show)}",
            f"Publish: {style.code(publish)} (or by id, as above)",
        ]
    )


def _success_parts(
    event: NotifyEvent,
    now: datetime,
    style: _Style,
    *,
    environment: str | None,
    top_n: int,
    max_leaderboards: int,
) -> list[_Part]:
    run: RunContext = event["run"]
    results = event["results"]
    elapsed = run_seconds(event, now)
    votes = sum(r["vote_count"] for r in results)
    icon = f"{_TITLES[_outcome(event)][0]} " if style.markup else ""
    parts: list[_Part] = [
        _Header(icon + _success_title(event, environment)),
        _Fields(
            [
                ("Snapshot", style.code(run["snapshot_identifier"])),
                ("Visibility", _visibility(results) if results else "nothing published"),
                ("Trigger", style.escape(trigger_text(run["trigger"], run["requested_by"]))),
                ("Run time", duration(elapsed)),
                ("Leaderboards", f"{len(results)} ranked · {len(event['skipped'])} skipped"),
                ("Votes", f"{votes:,}"),
            ]
        ),
        _Divider(),
    ]
    if not results:
        parts.append(_Section(NOTHING_PUBLISHED))
    elif published_count(event) == 0:
        parts.append(_Section(NOTHING_LIVE))
    shown = results if len(results) <= max_leaderboards else results[: max_leaderboards - 1]
    parts += [_Section(_leaderboard_section(r, style, top_n)) for r in shown]
    if len(shown) < len(results):
        parts.append(_Section(_more_leaderboards(results[len(shown) :], style)))
    if any(r["visibility"] == "private" for r in results):
        parts.append(_Section(_review_section(event, style)))
    if event["skipped"] or event["left_out"]:
        parts.append(_Section(_data_problems_section(event, style)))
    parts.append(
        _Context(
            [
                f"run {style.code(run['run_id'])}",
                f"execution {style.code(run['execution_name'])}",
                f"correlation id {style.code(run['correlation_id'])}",
            ]
        )
    )
    return parts


def _success_text(event: NotifyEvent, now: datetime, environment: str | None) -> str:
    run = event["run"]
    winners = "; ".join(
        f"{r['slug']}: {min(r['top'], key=lambda e: e['rank'])['model']}"
        for r in event["results"]
        if r["top"]
    )
    text = (
        f"{_success_title(event, environment)}: {run['snapshot_identifier']}"
        f" ({len(event['results'])} ranked, {len(event['skipped'])} skipped,"
        f" {trigger_text(run['trigger'], run['requested_by'])},"
        f" run time {duration(run_seconds(event, now))})."
        + (f" Top models: {winners}." if winners else "")
    )
    return trim(MRKDWN.escape(text), FALLBACK_TEXT_LIMIT)


def success_message(
    event: NotifyEvent,
    *,
    now: datetime,
    environment: str | None = None,
    top_n: int = TOP_MODELS,
    max_leaderboards: int = DETAILED_LEADERBOARDS,
) -> SlackMessage:
    """The run's summary for Slack: top models with CIs, rank moves, skips and votes left out,
    trigger, run time; a run that published nothing says so plainly."""
    # The blocks besides the leaderboard sections (header, fields, context, ...) come first; the
    # last section that fits becomes "and N more leaderboards" when they do not all fit.
    everything = _success_parts(
        event,
        now,
        MRKDWN,
        environment=environment,
        top_n=top_n,
        max_leaderboards=len(event["results"]) + 1,
    )
    fixed = len(everything) - len(event["results"])
    detailed = max(2, min(max_leaderboards, MAX_BLOCKS - fixed))
    while True:
        blocks = _blocks(
            _success_parts(
                event, now, MRKDWN, environment=environment, top_n=top_n, max_leaderboards=detailed
            )
        )
        if detailed == 1 or blocks_text(blocks) <= MAX_MESSAGE_TEXT:
            break
        detailed -= 1
    return SlackMessage(text=_success_text(event, now, environment), blocks=blocks)


def blocks_text(blocks: Sequence[dict[str, Any]]) -> int:
    """Characters of text in Block Kit blocks: their text, fields and context elements."""
    total = 0
    for block in blocks:
        total += len(block.get("text", {}).get("text", ""))
        total += sum(len(item["text"]) for item in block.get("fields", ()))
        total += sum(len(item.get("text", "")) for item in block.get("elements", ()))
    return total


def success_plain(
    event: NotifyEvent, *, now: datetime, environment: str | None = None, top_n: int = TOP_MODELS
) -> PlainMessage:
    """The same summary as plain text (every leaderboard listed), for SNS."""
    parts = _success_parts(
        event,
        now,
        PLAIN,
        environment=environment,
        top_n=top_n,
        max_leaderboards=len(event["results"]) + 1,
    )
    subject = f"{_success_title(event, environment)}: {event['run']['snapshot_identifier']}"
    return PlainMessage(subject=subject_line(subject), body=_plain_body(parts))


# --- failure ---------------------------------------------------------------------------------------
_STATUS_WORDS = {"FAILED": "failed", "TIMED_OUT": "timed out", "ABORTED": "was aborted"}


def _failure_title(report: FailureReport, environment: str | None) -> str:
    where = f" at {report.state}" if report.state else ""
    title = f"Leaderboard run {_STATUS_WORDS.get(report.status, report.status)}{where}"
    return f"{title} ({environment})" if environment else title


def _where(report: FailureReport, style: _Style) -> str:
    if not report.state:
        return "unknown (history unavailable)" if not report.history_available else "unknown"
    where = style.code(report.state)
    if report.map_state is not None:
        where += f" in {style.code(report.map_state)}"
        if report.iteration is not None:
            where += f", iteration {report.iteration}"
    return where


def _failure_parts(report: FailureReport, style: _Style, environment: str | None) -> list[_Part]:
    times = ""
    if report.started_at and report.stopped_at:
        times = duration((report.stopped_at - report.started_at).total_seconds())
    fields = [
        ("Execution", style.code(report.execution_name)),
        ("Status", report.status),
        ("Failed state", _where(report, style)),
        ("Error", style.code(report.error) if report.error else "none given"),
    ]
    if report.leaderboard:
        fields.append(("Leaderboard", style.escape(report.leaderboard)))
    if report.trigger:
        fields.append(("Trigger", style.escape(trigger_text(report.trigger, report.requested_by))))
    if report.started_at:
        fields.append(("Started", f"{report.started_at:%Y-%m-%d %H:%M:%S} UTC"))
    if times:
        fields.append(("Ran for", times))
    parts: list[_Part] = [
        _Header(("🚨 " if style.markup else "") + _failure_title(report, environment)),
        _Fields(fields),
    ]
    if report.cause:
        parts.append(_Section(f"{style.bold('Cause')}\n{style.preformatted(report.cause)}"))
    redrive = [
        style.bold("Redrive"),
        "Fix the cause, then resume the execution at the failed state with the same input:",
        f"• Console: {style.link(report.console_url, 'open the execution')}, press Redrive",
        f"• AWS CLI: {style.code(report.redrive_command)}",
    ]
    parts.append(_Section(_fit_lines(redrive)))
    context = [f"state machine {style.code(report.state_machine_name)}"]
    if report.correlation_id:
        context.append(f"correlation id {style.code(report.correlation_id)}")
    if not report.history_available:
        context.append("the execution history could not be read")
    parts.append(_Context(context))
    return parts


def failure_message(report: FailureReport, *, environment: str | None = None) -> SlackMessage:
    """The alert for a failed, timed-out or aborted execution, with how to redrive it."""
    detail = report.cause or ""
    if report.error and not detail.startswith(report.error):
        detail = f"{report.error}: {detail}" if detail else report.error
    text = f"{_failure_title(report, environment)}: {report.execution_name}"
    text += f" — {detail}" if detail else ""
    return SlackMessage(
        text=trim(MRKDWN.escape(text), FALLBACK_TEXT_LIMIT),
        blocks=_blocks(_failure_parts(report, MRKDWN, environment)),
    )


def failure_plain(report: FailureReport, *, environment: str | None = None) -> PlainMessage:
    subject = f"{_failure_title(report, environment)}: {report.error or report.status}"
    return PlainMessage(
        subject=subject_line(subject), body=_plain_body(_failure_parts(report, PLAIN, environment))
    )


# --- delivery --------------------------------------------------------------------------------------
def _silent_logger() -> logging.Logger:
    # slack-sdk logs the full webhook URL when it retries and at debug level.
    silent = logging.getLogger("common.slack.webhook_client")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    silent.setLevel(logging.CRITICAL)
    silent.disabled = True
    return silent


_SILENT = _silent_logger()


def _reason(reason: object) -> str:
    strerror = getattr(reason, "strerror", None)
    return f"{type(reason).__name__}: {strerror}" if strerror else type(reason).__name__


def post(webhook_url: str, message: SlackMessage, *, timeout: int = DEFAULT_TIMEOUT_S) -> None:
    """Send a message to an incoming webhook; raise SlackUnavailable or SlackRejected on failure."""
    client = WebhookClient(webhook_url, timeout=timeout, logger=_SILENT, retry_handlers=[])
    try:
        response = client.send_dict(dict(message))
    except (SlackRequestError, ValueError):
        raise ConfigurationError("the Slack webhook URL is not an http(s) URL") from None
    except URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise SlackUnavailable(f"Slack did not answer within {timeout} s") from None
        raise SlackUnavailable(f"Slack could not be reached ({_reason(exc.reason)})") from None
    except TimeoutError:
        raise SlackUnavailable(f"Slack did not answer within {timeout} s") from None
    except (http.client.HTTPException, OSError) as exc:
        raise SlackUnavailable(f"Slack connection failed ({_reason(exc)})") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    body = trim(" ".join(str(response.body or "").split()), 100) or "no body"
    if status == 429:
        retry_after = (response.headers or {}).get("Retry-After") or (response.headers or {}).get(
            "retry-after"
        )
        after = f", retry after {retry_after} s" if retry_after else ""
        raise SlackUnavailable(f"Slack rate-limited the webhook (429{after}): {body}")
    if status >= 500:
        raise SlackUnavailable(f"Slack answered {status}: {body}")
    raise SlackRejected(f"Slack refused the message ({status}): {body}")
