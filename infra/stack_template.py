"""Reading a synthesized CloudFormation template the way the local runner needs it.

The local run executes exactly what would be deployed: the state machine definition and each
function's command, memory, timeout and environment come from the template the CDK app
synthesizes. CloudFormation intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select,
Fn::Split) are resolved against the local stand-ins of the stack's resources. Pure functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Resolver = Mapping[str, Mapping[str, str]]
"""logical id -> {"Ref": value, "Arn": value, <other attribute>: value}."""


class TemplateError(Exception):
    """The template does not hold what the local runner needs, or uses an unsupported intrinsic."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    """Dotted path of the handler, from the container image's command."""
    memory_mb: int
    timeout_s: int
    environment: dict[str, Any]
    """Unresolved: values may still be intrinsics."""


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def functions(template: Mapping[str, Any]) -> dict[str, FunctionSpec]:
    """Every container-image Lambda function whose command names a handler."""
    specs = {}
    for logical_id, resource in resources_of_type(template, "AWS::Lambda::Function").items():
        props = resource.get("Properties", {})
        command = props.get("ImageConfig", {}).get("Command") or []
        if not command:
            continue
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            handler=str(command[0]),
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_s=int(props.get("Timeout", 3)),
            environment=dict(props.get("Environment", {}).get("Variables", {})),
        )
    return specs


def state_machine(template: Mapping[str, Any]) -> tuple[str, Any]:
    """The (logical id, unresolved DefinitionString) of the stack's one state machine."""
    machines = resources_of_type(template, "AWS::StepFunctions::StateMachine")
    if len(machines) != 1:
        raise TemplateError(f"expected one state machine in the template, found {len(machines)}")
    logical_id, resource = next(iter(machines.items()))
    props = resource["Properties"]
    if "DefinitionString" in props:
        return logical_id, props["DefinitionString"]
    if "Definition" in props:
        return logical_id, json.dumps(props["Definition"])
    raise TemplateError("the state machine has no DefinitionString")


def resolve(value: Any, resources: Resolver, pseudo: Mapping[str, str]) -> Any:
    """Evaluate the CloudFormation intrinsics in ``value``."""
    if isinstance(value, list):
        return [resolve(v, resources, pseudo) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
        return {k: resolve(v, resources, pseudo) for k, v in value.items()}
    name, arg = next(iter(value.items()))
    if name == "Ref":
        return _lookup(arg, "Ref", resources, pseudo)
    if name == "Fn::GetAtt":
        logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
        return _lookup(logical_id, attribute, resources, pseudo)
    if name == "Fn::Join":
        separator, parts = arg
        return separator.join(str(resolve(p, resources, pseudo)) for p in parts)
    if name == "Fn::Select":
        index, items = arg
        return resolve(items, resources, pseudo)[int(resolve(index, resources, pseudo))]
    if name == "Fn::Split":
        separator, text = arg
        return str(resolve(text, resources, pseudo)).split(separator)
    if name == "Fn::Sub":
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        values = {k: str(resolve(v, resources, pseudo)) for k, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in values:
                return values[key]
            logical_id, _, attribute = key.partition(".")
            return _lookup(logical_id, attribute or "Ref", resources, pseudo)

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)
    raise TemplateError(f"unsupported intrinsic {name}")


def _lookup(logical_id: str, attribute: str, resources: Resolver, pseudo: Mapping[str, str]) -> str:
    if attribute == "Ref" and logical_id in pseudo:
        return pseudo[logical_id]
    try:
        return resources[logical_id][attribute]
    except KeyError:
        raise TemplateError(f"no local value for {logical_id}.{attribute}") from None
