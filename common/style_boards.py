"""Style-controlled leaderboards: which BixArena leaderboard row shows which one's style-controlled
ranking.

The rank stage computes a style-controlled ranking for every leaderboard whose votes carry the
answers' style counts. It is published only where the operator maps the leaderboard to a row of
its own, created by BixArena's admins: ``STYLE_CONTROL_LEADERBOARDS`` (CDK context
``styleControlLeaderboards``) is a JSON object ``{base slug: style-controlled slug}``, e.g.
``{"overall": "overall-style-control"}``. Unmapped leaderboards get it computed and reported only.

A mapping is valid when every slug is one our contracts carry, no leaderboard maps to itself,
no two leaderboards share a style-controlled row, no style-controlled row is itself mapped (no
chains), and no style-controlled row is a reference leaderboard (those rank their own votes).
``parse_style_boards`` checks this at synth (``infra.config``) and in the stages, with one error
naming the problem. A style-controlled row is never ranked from votes of its own: fetch leaves the
targets out of "all" and refuses a request that names one.
The publication itself is ``common.style_publish``'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeGuard

from common.contracts import REFERENCE_LEADERBOARDS, SLUG_RE
from common.errors import ConfigurationError

ENVIRONMENT_VARIABLE = "STYLE_CONTROL_LEADERBOARDS"
MAX_MAPPINGS = 100


def parse_style_boards(raw: object, name: str = ENVIRONMENT_VARIABLE) -> dict[str, str]:
    """The mapping base slug -> style-controlled slug (empty when unset) from JSON text or an
    object, validated; a bad one raises ``ConfigurationError`` naming ``name`` and the entry."""
    if raw is None or raw == "":
        return {}
    value: object = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigurationError(f"{name}: not valid JSON") from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{name}: expected a JSON object {{base slug: style-controlled slug}}"
        )
    if len(value) > MAX_MAPPINGS:
        raise ConfigurationError(f"{name}: more than {MAX_MAPPINGS} mappings")
    mapping: dict[str, str] = {}
    for base, target in value.items():
        if not _is_slug(base):
            raise ConfigurationError(_not_a_slug(name, base, "leaderboard"))
        if not _is_slug(target):
            raise ConfigurationError(_not_a_slug(name, target, "style-controlled leaderboard"))
        if base == target:
            raise ConfigurationError(f"{name}: {base} maps to itself")
        if target in REFERENCE_LEADERBOARDS:
            raise ConfigurationError(
                f"{name}: {base} maps to {target}, a reference leaderboard "
                "ranked from its own votes"
            )
        mapping[base] = target
    targets = list(mapping.values())
    shared = sorted({t for t in targets if targets.count(t) > 1})
    if shared:
        bases = sorted(b for b, t in mapping.items() if t == shared[0])
        raise ConfigurationError(f"{name}: {' and '.join(bases)} both map to {shared[0]}")
    chained = sorted(set(targets) & set(mapping))
    if chained:
        raise ConfigurationError(
            f"{name}: {chained[0]} is a style-controlled leaderboard and is "
            "mapped itself (no chains)"
        )
    return mapping


def _is_slug(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None


def _not_a_slug(name: str, value: object, what: str) -> str:
    return (
        f"{name}: {str(value)[:60]!r} is not a {what} slug "
        "(a-z, 0-9 and '-', at most 100 characters)"
    )


def canonical(mapping: Mapping[str, str]) -> str:
    """The mapping as the environment variable holds it: sorted, compact JSON."""
    return json.dumps(dict(mapping), separators=(",", ":"), sort_keys=True)
