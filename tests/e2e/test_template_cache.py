"""The local run's template cache: its key covers everything the synthesis reads, nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from local import template
from local.template import REPO_ROOT, cache_key, inputs


def _copy_inputs(target: Path) -> None:
    for path in inputs():
        destination = target / path.relative_to(REPO_ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    (target / "cli").mkdir()
    shutil.copyfile(REPO_ROOT / "cli" / "main.py", target / "cli" / "main.py")


def test_every_module_the_synthesis_loads_is_an_input() -> None:
    script = (
        "import json, sys, tempfile\n"
        "from infra.app import synthesize_template\n"
        "with tempfile.TemporaryDirectory() as out:\n"
        "    synthesize_template(outdir=out)\n"
        "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    loaded = {
        Path(f).resolve()
        for f in json.loads(done.stdout.splitlines()[-1])
        if f
        and Path(f).resolve().is_relative_to(REPO_ROOT)
        and ".venv" not in Path(f).resolve().relative_to(REPO_ROOT).parts
    }
    assert loaded, "the synthesis loaded no module of the repository?"
    assert loaded <= {p.resolve() for p in inputs()}


def test_the_key_follows_the_modules_outside_infra_and_nothing_else(tmp_path: Path) -> None:
    _copy_inputs(tmp_path)
    before = cache_key(tmp_path)
    assert cache_key(tmp_path) == before
    (tmp_path / "cli" / "main.py").write_text("# not an input of the synthesis\n")
    assert cache_key(tmp_path) == before
    contracts = tmp_path / "common" / "contracts.py"
    contracts.write_text(contracts.read_text().replace("BOOTSTRAP_MAX", "BOOTSTRAP_MAXIMUM"))
    changed = cache_key(tmp_path)
    assert changed != before
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert cache_key(tmp_path) != changed


def test_a_cached_template_is_reused_under_its_key(tmp_path: Path) -> None:
    cached = tmp_path / "templates" / f"stack-{cache_key()}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"Resources": {"Marker": {}}}))
    assert template.template(tmp_path) == {"Resources": {"Marker": {}}}
