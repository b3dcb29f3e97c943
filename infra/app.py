"""The CDK app: ``cdk synth`` runs ``python -m infra.app`` (see cdk.json); tests and the local
runner call ``build_app`` / ``synthesize_template`` in-process.

The context of cdk.json (CDK's feature flags) is loaded here too, so an in-process synthesis gives
the same template as the CLI's. cdk-nag's AwsSolutions checks run at every CLI synthesis.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.config import InvalidContext, parse_context
from infra.nag import add_checks
from infra.stack import LeaderboardStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text()).get("context", {})
    return context


def build_app(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None, nag: bool = True
) -> tuple[App, LeaderboardStack]:
    """The app and its one stack; ``context`` as given with ``cdk -c key=value``."""
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    config = parse_context(app.node.get_all_context())
    stack = LeaderboardStack(app, config.name_prefix, config=config)
    if nag:
        add_checks(app)
    return app, stack


def synthesize_template(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None
) -> dict[str, Any]:
    """The CloudFormation template of the stack, as ``cdk synth`` writes it (without cdk-nag)."""
    app, stack = build_app(context, outdir=outdir, nag=False)
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def main() -> None:
    try:
        app, _ = build_app()
    except InvalidContext as exc:
        sys.exit(f"cdk context: {exc}")
    app.synth()


if __name__ == "__main__":
    main()
