"""Resolving CloudFormation intrinsics and reading functions and the state machine from a template."""

from __future__ import annotations

import pytest

from infra.stack_template import TemplateError, functions, resolve, state_machine

PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
VALUES = {
    "Fn1": {"Ref": "fn-1", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:fn-1"},
    "Bucket": {"Ref": "b"},
}

TEMPLATE = {
    "Resources": {
        "Fn1": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "ImageConfig": {"Command": ["stages.fetch.handler.handler"]},
                "MemorySize": 2048,
                "Timeout": 600,
                "Environment": {
                    "Variables": {"ARTIFACTS_BUCKET": {"Ref": "Bucket"}, "MIN_EVALS": "10"}
                },
            },
        },
        "Zip": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "index.handler"}},
        "Machine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "DefinitionString": {
                    "Fn::Join": ["", ['{"Resource":"', {"Fn::GetAtt": ["Fn1", "Arn"]}, '"}']]
                }
            },
        },
    }
}


def test_functions_are_read_from_their_image_command() -> None:
    specs = functions(TEMPLATE)
    assert list(specs) == ["Fn1"]
    spec = specs["Fn1"]
    assert (spec.handler, spec.memory_mb, spec.timeout_s) == (
        "stages.fetch.handler.handler",
        2048,
        600,
    )
    assert resolve(spec.environment, VALUES, PSEUDO) == {"ARTIFACTS_BUCKET": "b", "MIN_EVALS": "10"}


def test_state_machine_definition_resolves() -> None:
    logical_id, definition = state_machine(TEMPLATE)
    assert logical_id == "Machine"
    assert (
        resolve(definition, VALUES, PSEUDO)
        == '{"Resource":"arn:aws:lambda:us-east-1:123456789012:function:fn-1"}'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}"}, "arn:aws:s3:::b"),
        (
            {"Fn::Sub": ["${X}-${Fn1.Arn}", {"X": {"Ref": "Bucket"}}]},
            "b-arn:aws:lambda:us-east-1:123456789012:function:fn-1",
        ),
        ({"Fn::Select": [1, {"Fn::Split": [":", "a:b:c"]}]}, "b"),
        ({"Fn::GetAtt": "Fn1.Arn"}, "arn:aws:lambda:us-east-1:123456789012:function:fn-1"),
        ({"plain": [{"Ref": "Bucket"}]}, {"plain": ["b"]}),
    ],
)
def test_intrinsics(value: object, expected: object) -> None:
    assert resolve(value, VALUES, PSEUDO) == expected


def test_unknown_references_and_intrinsics_are_named() -> None:
    with pytest.raises(TemplateError, match=r"Nope\.Ref"):
        resolve({"Ref": "Nope"}, VALUES, PSEUDO)
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        resolve({"Fn::ImportValue": "x"}, VALUES, PSEUDO)
    with pytest.raises(TemplateError, match="one state machine"):
        state_machine({"Resources": {}})
