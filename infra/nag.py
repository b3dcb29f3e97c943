"""cdk-nag (AwsSolutions pack, cdk-nag 3.x API) and the stack's acknowledged findings.

Every finding is either fixed or acknowledged on the construct it concerns with a reason that says
why it does not apply here; ``acknowledge`` refuses vague reasons so that a suppression always
documents a decision. A finding left unacknowledged makes synthesis fail (``ValidationFailed``)
and cdk-nag writes the report to ``validation-report.json`` in the cloud assembly.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

MIN_REASON_CHARS = 40


def add_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (e.g. ``AwsSolutions-IAM5[Resource::*]``) with its reason."""
    if not rule_id.startswith("AwsSolutions-"):
        raise ValueError(f"acknowledge: {rule_id!r} is not an AwsSolutions rule id")
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"acknowledge {rule_id}: the reason must say why it does not apply here")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
