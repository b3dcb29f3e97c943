"""The import contract of make lint: it holds on the tree, and breaks when a stage imports the
local run (on a copy of the tree, so the real one is never touched). And what the contract cannot
see, imports at run time: the rank stage reads Parquet and ranks without loading scipy (a dev-only
dependency), pyarrow.dataset or pyarrow.compute (~45 and ~25 ms of a cold start)."""

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


_RANK_WITHOUT_SCIPY = """
import sys
import numpy as np
import stages.rank.handler
from common.ranking import StyleFeatures, Votes, rank_votes, rank_with_style

def votes(models, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, models, n)
    b = rng.integers(0, models - 1, n)
    b += b >= a
    names = tuple(f"m{i:02d}" for i in range(models))
    return Votes(names, a.astype(np.int32), b.astype(np.int32), rng.integers(0, 3, n).astype(np.int8))

# A sparse board (replicates without an MLE), a plain one, style control batched (few votes) and
# one replicate at a time (many), each with both intervals.
for v in (votes(30, 300, 1), votes(8, 2000, 2)):
    rank_votes(v, bootstrap=200)
    rank_votes(v, ci_method="sandwich")
for n, b in ((3000, 100), (40000, 4)):
    v = votes(6, n, 3)
    counts = np.random.default_rng(4).poisson(3.0, (n, 4, 2)).astype(np.int32)
    features = StyleFeatures(counts[..., 0], counts[..., 1])
    rank_with_style(v, features, bootstrap=b)
    rank_with_style(v, features, ci_method="sandwich")
import io
import pyarrow as pa
from common import storage
from common.answer_style import STYLE_COLUMNS
from common.votes import read_votes_with_style
data = storage.parquet_bytes(pa.table({"a": [1], "b": ["x"]}))
assert storage.read_parquet(data, storage.S3Uri("bucket", "key"), ["b"]).column_names == ["b"]
names = pa.array(["m1", "m2", "m3"])
style = {name: pa.array([1, None, 3], pa.int32()) for name in STYLE_COLUMNS}
data = storage.parquet_bytes(
    pa.table({
        "model1_id": pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), names),
        "model2_id": pa.DictionaryArray.from_arrays(pa.array([1, 2, 0], pa.int32()), names),
        "outcome": ["model1"] * 3,
        **style,
    })
)
read = read_votes_with_style(io.BytesIO(data), model_a="model1_id", model_b="model2_id")
assert read.left_out == 1 and read.features.a[:, 0].tolist() == [1, 3], read
unwanted = ("scipy", "pyarrow.dataset", "pyarrow.compute")
loaded = sorted(n for n in sys.modules if any(n == u or n.startswith(u + ".") for u in unwanted))
print("unwanted modules:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_the_rank_stage_reads_and_ranks_without_scipy_or_heavy_pyarrow_modules() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RANK_WITHOUT_SCIPY],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unwanted modules: []" in done.stdout
