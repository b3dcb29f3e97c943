"""The import contract of make lint: it holds on the tree, and breaks when a stage imports the
local run (on a copy of the tree, so the real one is never touched)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "cli", "local", "infra", "stages", "common")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "lint-imports"),
            "--config",
            str(root / "pyproject.toml"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def _copy(target: Path) -> None:
    shutil.copyfile(REPO / "pyproject.toml", target / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )


def test_the_tree_keeps_the_contracts(tmp_path: Path) -> None:
    _copy(tmp_path)
    done = _lint_imports(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_a_stage_importing_the_local_run_breaks_them(tmp_path: Path) -> None:
    _copy(tmp_path)
    handler = tmp_path / "stages" / "rank" / "handler.py"
    handler.write_text(handler.read_text() + "\nfrom local import faults  # noqa: E402\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "stages.rank.handler -> local.faults" in done.stdout
    assert "BROKEN" in done.stdout
