"""The synthesized stack template the local run executes, cached until its inputs change.

Synthesis costs seconds, so the template is kept in ``.local/templates`` under a key. The key
hashes everything the template is a function of: the CDK app (``infra/``), cdk.json, and the
image's build context -- Dockerfile, the runtime lock, ``common/`` and ``stages/`` -- which the
synthesized template names by its asset hash and whose modules the app imports (the retried
error names, the metrics namespace, the bootstrap bounds, ...) -- and the local run's context
values (LOCAL_CONTEXT: the sandbox stack, plus the style-controlled leaderboard the local database
has, ``local.style_boards``). Nothing else feeds the synthesis: it reads no environment variable.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local.style_boards import LOCAL_STYLE_CONTROL

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("infra", "common", "stages")
SOURCE_FILES = ("cdk.json", "Dockerfile", ".dockerignore", "requirements.lock")
_IGNORED_PARTS = frozenset({"__pycache__"})
LOCAL_CONTEXT: dict[str, Any] = {"styleControlLeaderboards": LOCAL_STYLE_CONTROL}
"""CDK context of the local stack (what ``cdk deploy -c`` would pass)."""


def inputs(root: Path = REPO_ROOT) -> Iterator[Path]:
    """Every file the synthesized template depends on, in a fixed order."""
    for name in SOURCE_DIRS:
        for path in sorted((root / name).rglob("*")):
            if path.is_file() and not _IGNORED_PARTS.intersection(path.parts):
                yield path
    for name in SOURCE_FILES:
        if (root / name).is_file():
            yield root / name


def cache_key(root: Path = REPO_ROOT) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(LOCAL_CONTEXT, sort_keys=True).encode() + b"\0")
    for path in inputs(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def template(state_dir: Path) -> dict[str, Any]:
    """The stack's template: from the cache when its inputs are unchanged, else synthesized."""
    cached = state_dir / "templates" / f"stack-{cache_key()}.json"
    if cached.exists():
        loaded: dict[str, Any] = json.loads(cached.read_text())
        return loaded
    from infra.app import synthesize_template

    with tempfile.TemporaryDirectory(prefix="leaderboard-synth-") as outdir:
        synthesized = synthesize_template(LOCAL_CONTEXT, outdir=outdir)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Concurrent runs and test sessions share the cache: never let one read a half-written file.
    partial = cached.with_suffix(f".{uuid.uuid4().hex}.tmp")
    partial.write_text(json.dumps(synthesized))
    partial.replace(cached)
    return synthesized
