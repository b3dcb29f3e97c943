"""Notify events for tests: a run of two leaderboards and one skip, built field by field."""

from __future__ import annotations

from datetime import UTC, datetime

from common.contracts import NotifyEvent, PublishResult, SummaryEntry, parse_notify_event

NOW = datetime(2025, 6, 1, 3, 4, 12, tzinfo=UTC)


def entry(model: str, rank: int, score: float, previous: int | None) -> SummaryEntry:
    return SummaryEntry(
        model=model,
        rank=rank,
        bt_score=score,
        bootstrap_q025=score - 12.25,
        bootstrap_q975=score + 11.75,
        vote_count=400 - rank,
        previous_rank=previous,
    )


def result(
    slug: str,
    top: list[SummaryEntry],
    *,
    previous: str | None = "snapshot_2025-05-31_03-00-00",
    new: list[str] | None = None,
    dropped: list[str] | None = None,
    votes: int = 1234,
    visibility: str = "public",
    shown: str | None = None,
    superseded: bool = False,
) -> PublishResult:
    """A leaderboard's result; a public one is shown unless ``shown`` names a newer one, a private
    one waits while ``shown`` (default: ``previous``) is shown."""
    identifier = "snapshot_2025-06-01_03-00-00"
    if shown is None:
        shown = identifier if visibility == "public" else previous
    return PublishResult(
        slug=slug,
        snapshot_id=f"id-{slug}",
        snapshot_identifier=identifier,
        visibility=visibility,  # type: ignore[typeddict-item]
        entry_count=max(len(top), 12),
        vote_count=votes,
        created=True,
        previous_snapshot_identifier=previous,
        shown_snapshot_identifier=shown,
        superseded=superseded,
        top=top,
        new_models=new or [],
        dropped_models=dropped or [],
    )


def notify_event(
    results: list[PublishResult] | None = None,
    skipped: list[dict[str, str]] | None = None,
    *,
    trigger: str = "manual",
    requested_by: str | None = "alice@example.org",
) -> NotifyEvent:
    """A run of two leaderboards and one skip, started 4m12s before NOW."""
    if results is None:
        results = [
            result(
                "overall",
                [
                    entry("gpt-4o", 1, 1123.4, 3),
                    entry("claude-3-opus", 2, 1101.0, 1),
                    entry("llama-3-70b", 3, 1050.5, None),
                    entry("mixtral-8x7b", 4, 990.0, 4),
                ],
                new=["llama-3-70b"],
                dropped=["palm-2"],
                votes=5000,
            ),
            result("genetics", [entry("gpt-4o", 1, 1080.0, None)], previous=None, votes=321),
        ]
    raw = {
        "mode": "success",
        "run": {
            "run_id": "20250601T030000Z-run-1",
            "execution_id": "arn:aws:states:us-east-1:123456789012:execution:sm:run-1",
            "execution_name": "run-1",
            "correlation_id": "corr-123",
            "trigger": trigger,
            "requested_by": requested_by,
            "run_at": "2025-06-01T03:00:00Z",
            "snapshot_identifier": "snapshot_2025-06-01_03-00-00",
            "bootstrap": 1000,
            "seed": 0,
            "publish": True,
            "artifacts_prefix": "s3://artifacts-bucket/runs/20250601T030000Z-run-1/",
        },
        "results": results,
        "skipped": [{"slug": "immunology", "reason": "fewer than 30 battles (12)"}]
        if skipped is None
        else skipped,
    }
    return parse_notify_event(raw)
