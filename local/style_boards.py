"""The local run's style-controlled leaderboard: its mapping and its row.

In production BixArena's admins create a style-controlled leaderboard's row and the operator maps
a leaderboard to it (``styleControlLeaderboards``, docs/deploy.md). The local run does both: its
stack is synthesized with LOCAL_STYLE_CONTROL as that context value (``local.template``), and the
seeding of its database creates the rows (``create_rows``), so ``make run`` publishes the
style-controlled ``overall`` next to the plain one.
"""

from __future__ import annotations

from common.db import connect

LOCAL_STYLE_CONTROL: dict[str, str] = {"overall": "overall-style-control"}
"""Base slug -> style-controlled slug, as the local stack maps them."""


def row_name(base: str) -> tuple[str, str]:
    """The name and description of the style-controlled row of ``base``."""
    title = base.replace("-", " ").capitalize()
    return (
        f"{title} (style control)",
        f"{title} ranking with answer length and markdown held equal (style control)",
    )


def create_rows(url: str, mapping: dict[str, str] | None = None) -> list[str]:
    """Create the style-controlled rows of ``mapping`` (default LOCAL_STYLE_CONTROL) that the
    database lacks; returns the slugs created."""
    created: list[str] = []
    with connect(url) as conn:
        for base, target in (mapping or LOCAL_STYLE_CONTROL).items():
            name, description = row_name(base)
            row = conn.execute(
                "INSERT INTO api.leaderboard (slug, name, description) VALUES (%s, %s, %s)"
                " ON CONFLICT (slug) DO NOTHING RETURNING slug",
                (target, name, description),
            ).fetchone()
            if row is not None:
                created.append(str(row[0]))
        conn.commit()
    return created
