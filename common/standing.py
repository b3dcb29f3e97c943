"""Where a snapshot stands against what BixArena shows, and how people are told.

BixArena shows, per leaderboard, its newest public snapshot in data order (``common.snapshots``).
A snapshot is then *live* (public, and the one shown), *history* (public, but a public snapshot
with newer votes is shown: publishing it changed nothing BixArena shows) or *private* (awaiting
review: publishing it makes it live, or only adds it to the history when a public snapshot with
newer votes exists). The publish result, the Slack message and the command line all say it with
``describe``'s words. Pure: the facts come from the database (``common.snapshots.placement``) or
from a ``PublishResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from common.contracts import PublishResult

Standing = Literal["live", "history", "private"]


@dataclass(frozen=True)
class Placement:
    slug: str
    snapshot_identifier: str
    public: bool
    shown: str | None
    """The identifier of the snapshot BixArena shows for the leaderboard (None: none is public)."""
    superseded: bool
    """A public snapshot with newer votes exists (the shown one)."""

    @property
    def standing(self) -> Standing:
        if not self.public:
            return "private"
        return "history" if self.superseded else "live"


def of_result(result: PublishResult) -> Placement:
    return Placement(
        slug=result["slug"],
        snapshot_identifier=result["snapshot_identifier"],
        public=result["visibility"] == "public",
        shown=result["shown_snapshot_identifier"],
        superseded=result["superseded"],
    )


def describe(placement: Placement, code: Callable[[str], str] = str) -> str:
    """The placement in plain words (``code`` formats an identifier, e.g. as Slack code)."""
    slug, shown = placement.slug, placement.shown
    if placement.standing == "live":
        return f"BixArena shows it for {slug}"
    if placement.standing == "history":
        return f"published as history: {slug} already shows {code(str(shown))} with newer votes"
    if shown is None:
        return f"private, awaiting review: {slug} has no public snapshot, publishing makes it live"
    if placement.superseded:
        return (
            f"private: {slug} already shows {code(shown)} with newer votes,"
            " so publishing it would only add it to the history"
        )
    return (
        f"private, awaiting review: BixArena shows {code(shown)} for {slug} until it is published"
    )


def publish_command(snapshot_id: str) -> str:
    """The operator's command that makes a private snapshot public."""
    return f"leaderboard snapshots publish {snapshot_id}"


def publish_command_by_identifier(snapshot_identifier: str, slug: str) -> str:
    return f"leaderboard snapshots publish {snapshot_identifier} --leaderboard {slug}"
