"""Check, without Docker, that the Lambda image's contents import on the Lambda runtime's Python.

``make image-check`` (also part of ``make lint``) does what the Dockerfile does, on this machine:

1. installs requirements.lock for the image's platform (CPython 3.12, manylinux_2_28 x86_64, wheels
   only) into a folder under .local/, cached by the lock's hash;
2. lays out a task root like the image's (``common/`` and ``stages/`` copied, nothing else);
3. imports every ``stages/*/handler.py``, then every module of ``common/`` (a handler imports some
   of them only when a call needs them) and the heavy runtime packages, with a Python 3.12
   interpreter in isolated mode without site-packages (``-I -S``), so neither the dev venv nor
   the interpreter's own packages can make an import succeed that would fail in Lambda.

The dev venv runs Python 3.11, so a missing 3.12 interpreter fails the check with a message
saying how to provide one (``LAMBDA_PYTHON=/path/to/python3.12``).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK = REPO_ROOT / "requirements.lock"
CACHE = REPO_ROOT / ".local" / "image-check"
IMAGE_PYTHON = "3.12"
"""The Python of public.ecr.aws/lambda/python:3.12 (the Dockerfile's FROM)."""
PLATFORM = "manylinux_2_28_x86_64"
PLATFORM_TAGS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
"""pip takes ``--platform`` literally: every older manylinux tag glibc 2.28 also runs is listed."""
IMAGE_SOURCES = ("common", "stages")
"""The folders the Dockerfile copies into the task root."""
RUNTIME_IMPORTS = (
    "numpy",
    "pyarrow.parquet",
    "pyarrow.csv",
    "psycopg",
    "jwt",
    "slack_sdk.webhook",
    "aws_lambda_powertools",
    "aws_lambda_powertools.utilities.parameters",
    "boto3",
    "botocore.session",
    "threadpoolctl",
)
"""Imported besides the handlers, so a broken wheel shows even before a handler uses it; among
them what the code imports only inside a function (the answers' CSV reader, the secrets
client, the S3 session), which importing the modules does not reach."""

PYENV_ROOTS = (Path.home() / ".pyenv" / "versions",)

_PROBE = r"""
import importlib, json, sys, time
task_root, site_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [task_root, site_dir]
timings = {}
for name in names:
    start = time.perf_counter()
    module = importlib.import_module(name)
    timings[name] = round(time.perf_counter() - start, 3)
    if name.startswith("stages.") and not callable(getattr(module, "handler", None)):
        raise SystemExit(f"{name}: no callable handler(event, context)")
import psycopg
if psycopg.pq.__impl__ not in ("binary", "c"):
    raise SystemExit(f"psycopg uses its {psycopg.pq.__impl__} implementation: the image has no libpq")
import jwt.algorithms
if not jwt.algorithms.has_crypto:
    raise SystemExit("PyJWT has no cryptography backend: RS256 tokens cannot be verified")
print(json.dumps({"python": sys.version.split()[0], "import_s": timings}))
"""


class ImageCheckFailed(Exception):
    """The image's dependencies do not install or a module does not import; the message says why."""


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str


def _version_of(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def find_interpreter(explicit: str | None = None) -> Interpreter:
    """A CPython of the image's version: LAMBDA_PYTHON, python3.12 on PATH, or pyenv's."""
    candidates = [
        explicit or os.environ.get("LAMBDA_PYTHON"),
        shutil.which(f"python{IMAGE_PYTHON}"),
    ]
    for root in PYENV_ROOTS:
        candidates += sorted(
            glob.glob(str(root / f"{IMAGE_PYTHON}*" / "bin" / "python")), reverse=True
        )
    for candidate in candidates:
        if candidate and _version_of(candidate) == IMAGE_PYTHON:
            return Interpreter(candidate, IMAGE_PYTHON)
    raise ImageCheckFailed(
        f"no Python {IMAGE_PYTHON} interpreter found (tried LAMBDA_PYTHON, python{IMAGE_PYTHON} on "
        f"PATH, ~/.pyenv/versions/{IMAGE_PYTHON}*). The Lambda image runs Python {IMAGE_PYTHON}; "
        f"install it (e.g. pyenv install {IMAGE_PYTHON}, apt install python{IMAGE_PYTHON}) or "
        f"point LAMBDA_PYTHON at one."
    )


def site_dir_for(lock: Path) -> Path:
    key = hashlib.sha256(lock.read_bytes() + f"{IMAGE_PYTHON}|{PLATFORM}".encode()).hexdigest()[:16]
    return CACHE / f"site-py{IMAGE_PYTHON}-{key}"


def install_dependencies(lock: Path) -> Path:
    """pip-install the lock for the image's platform; reuse the folder while the lock is unchanged."""
    target = site_dir_for(lock)
    if (target / ".complete").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="site-", dir=CACHE))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--only-binary=:all:", "--implementation", "cp",
        *(arg for tag in PLATFORM_TAGS for arg in ("--platform", tag)),
        "--python-version", IMAGE_PYTHON,
        "--target", str(staging), "-r", str(lock),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImageCheckFailed(
            f"{lock.name} does not install for CPython {IMAGE_PYTHON} on {PLATFORM}:\n"
            f"{result.stderr.strip()[-3000:]}"
        )
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def task_root(destination: Path) -> Path:
    """The image's LAMBDA_TASK_ROOT sources: only what the Dockerfile copies."""
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    for name in IMAGE_SOURCES:
        shutil.copytree(
            REPO_ROOT / name,
            destination / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return destination


def handler_modules(root: Path = REPO_ROOT) -> list[str]:
    return [
        f"stages.{path.parent.name}.handler"
        for path in sorted((root / "stages").glob("*/handler.py"))
    ]


def common_modules(root: Path = REPO_ROOT) -> list[str]:
    """Every module of ``common/``, packages included, in path order."""
    names = []
    for path in sorted((root / "common").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def probe(
    interpreter: Interpreter, root: Path, site: Path, modules: list[str]
) -> dict[str, object]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(root),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "bixarena-leaderboard",
        "POWERTOOLS_METRICS_NAMESPACE": "BixArena/Leaderboard",
    }
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(
            [interpreter.path, "-I", "-S", "-c", _PROBE, str(root), str(site), *modules],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=300,
        )
    if result.returncode != 0:
        raise ImageCheckFailed(
            f"import failed under Python {interpreter.version} with the image's packages:\n"
            f"{(result.stderr or result.stdout).strip()[-3000:]}"
        )
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help=f"a Python {IMAGE_PYTHON} interpreter (default: found)")
    parser.add_argument("--lock", type=Path, default=LOCK)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        interpreter = find_interpreter(args.python)
        site = install_dependencies(args.lock)
        root = task_root(CACHE / "task-root")
        handlers = handler_modules()
        report = probe(interpreter, root, site, [*handlers, *common_modules(), *RUNTIME_IMPORTS])
    except ImageCheckFailed as exc:
        print(f"image-check: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(m.split(".")[1] for m in handlers) or "none yet"
    print(
        f"image-check: ok: {args.lock.name} installs for CPython {IMAGE_PYTHON} {PLATFORM}; "
        f"handlers import under Python {report['python']} ({names}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    print(json.dumps(report["import_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
