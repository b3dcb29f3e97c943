"""Redrive, emulated for local runs: resume a failed execution where it stopped.

moto has no RedriveExecution, so the local runner does what AWS does from the outside: it reads the
failed execution's history, finds the top-level state that failed and the input it received, and
runs a derived definition that starts there. A failed inline Map reruns only its unsuccessful
iterations, each from the state where it failed with the input that state received; iterations
that succeeded contribute their recorded output. ``$$.Execution.Id``/``Name`` references are
replaced by the original execution's values so the run id and snapshot identifier do not change.
Everything here is pure: history and definitions in, plan and definition out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from common.stepfunctions.history import (
    END_EVENTS,
    FAILED_STATUSES,
    by_id,
    details,
    iteration_of,
    loads,
)

ITEMS_KEY = "redrive_items"
_ROUTER = "RedriveRoute"
_KEEP = "RedriveKeepOutput"


class NotRedrivable(Exception):
    """The execution cannot be redriven (it did not fail, or its history says too little)."""


@dataclass(frozen=True)
class IterationPlan:
    index: int
    status: str
    """SUCCEEDED (output kept), RESUME (rerun from ``state`` with ``input``), or RESTART."""
    state: str | None = None
    input: Any = None
    output: Any = None


@dataclass(frozen=True)
class RedrivePlan:
    state: str
    """The top-level state the redrive starts at."""
    input: Any
    iterations: list[IterationPlan] = field(default_factory=list)


def plan_redrive(history: list[dict[str, Any]], definition: dict[str, Any]) -> RedrivePlan:
    """Where and with what input a redrive resumes, from the execution's history (oldest first)."""
    if not history or END_EVENTS.get(history[-1]["type"]) not in FAILED_STATUSES:
        raise NotRedrivable("only a FAILED, TIMED_OUT or ABORTED execution can be redriven")
    events_by_id = by_id(history)
    top_states = definition["States"]
    entered_top = [
        e for e in history
        if e["type"].endswith("StateEntered") and details(e).get("name") in top_states
        and iteration_of(events_by_id, e) is None
    ]  # fmt: skip
    if not entered_top:
        return RedrivePlan(
            state=definition["StartAt"],
            input=loads(details(history[0]).get("input")),
        )
    last = entered_top[-1]
    name = details(last)["name"]
    state_input = loads(details(last).get("input"))
    if top_states[name].get("Type") != "Map":
        return RedrivePlan(state=name, input=state_input)
    return RedrivePlan(
        state=name, input=state_input, iterations=_iteration_plans(history, events_by_id, last)
    )


def _iteration_plans(
    history: list[dict[str, Any]],
    events_by_id: dict[int, dict[str, Any]],
    map_entered: dict[str, Any],
) -> list[IterationPlan]:
    after = [e for e in history if int(e["id"]) > int(map_entered["id"])]
    length = next(
        (int(details(e).get("length", 0)) for e in after if e["type"] == "MapStateStarted"),
        0,
    )
    entered: dict[int, tuple[str, Any]] = {}
    exited: dict[int, Any] = {}
    succeeded: set[int] = set()
    for event in after:
        index = iteration_of(events_by_id, event)
        if index is None:
            continue
        found = details(event)
        if event["type"].endswith("StateEntered"):
            entered[index] = (found["name"], loads(found.get("input")))
        elif event["type"].endswith("StateExited"):
            exited[index] = loads(found.get("output"))
        elif event["type"] == "MapIterationSucceeded":
            succeeded.add(index)
    plans = []
    for index in range(length):
        if index in succeeded:
            plans.append(IterationPlan(index, "SUCCEEDED", output=exited.get(index)))
        elif index in entered:
            state, state_input = entered[index]
            plans.append(IterationPlan(index, "RESUME", state=state, input=state_input))
        else:
            plans.append(IterationPlan(index, "RESTART"))
    return plans


def _pin_execution_context(node: Any, execution_id: str, execution_name: str) -> Any:
    """Replace ``$$.Execution.Id``/``Name`` paths with the original execution's values."""
    if isinstance(node, dict):
        pinned: dict[str, Any] = {}
        for key, value in node.items():
            if key.endswith(".$") and value in ("$$.Execution.Id", "$$.Execution.Name"):
                pinned[key[:-2]] = execution_id if value == "$$.Execution.Id" else execution_name
            else:
                pinned[key] = _pin_execution_context(value, execution_id, execution_name)
        return pinned
    if isinstance(node, list):
        return [_pin_execution_context(v, execution_id, execution_name) for v in node]
    return node


def _rebase_selector(node: Any) -> Any:
    """Rewrite a Map ItemSelector so it reads the original Map input and item from a RESTART entry."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key.endswith(".$") and isinstance(value, str):
                if value.startswith("$$.Map.Item.Value"):
                    value = "$.item" + value[len("$$.Map.Item.Value") :]
                elif value.startswith("$$.Map.Item.Index"):
                    value = "$.index"
                elif value.startswith("$"):
                    value = "$.map_input" + value[1:]
            out[key] = _rebase_selector(value)
        return out
    return node


def redrive_definition(
    definition: dict[str, Any], plan: RedrivePlan, *, execution_id: str, execution_name: str
) -> tuple[dict[str, Any], Any]:
    """The derived definition and the execution input that resume the failed execution."""
    derived = _pin_execution_context(copy.deepcopy(definition), execution_id, execution_name)
    derived["StartAt"] = plan.state
    if not plan.iterations:
        return derived, plan.input
    map_state = derived["States"][plan.state]
    processor_key = "ItemProcessor" if "ItemProcessor" in map_state else "Iterator"
    processor = map_state[processor_key]
    selector = map_state.pop("ItemSelector", None) or map_state.pop("Parameters", None)
    inner_states = processor["States"]
    choices: list[dict[str, Any]] = [
        {"Variable": "$.status", "StringEquals": "SUCCEEDED", "Next": _KEEP},
    ]
    # A RESTART entry carries the original item: rebuild the iteration input as the original
    # ItemSelector would have (a Map already derived by an earlier redrive has none: its items
    # are entries that go back through the router).
    restart: dict[str, Any] = (
        {"Type": "Pass", "Parameters": _rebase_selector(selector), "Next": processor["StartAt"]}
        if selector
        else {"Type": "Pass", "InputPath": "$.item", "Next": processor["StartAt"]}
    )
    router_states: dict[str, Any] = {
        _KEEP: {"Type": "Pass", "OutputPath": "$.output", "End": True},
        "RedriveRestart": restart,
    }
    for name in inner_states:
        if name.startswith("Redrive"):
            continue
        choices.append({"And": [
            {"Variable": "$.status", "StringEquals": "RESUME"},
            {"Variable": "$.state", "StringEquals": name},
        ], "Next": f"RedriveResume{name}"})  # fmt: skip
        router_states[f"RedriveResume{name}"] = {
            "Type": "Pass",
            "OutputPath": "$.input",
            "Next": name,
        }
    router_states[_ROUTER] = {"Type": "Choice", "Choices": choices, "Default": "RedriveRestart"}
    processor["States"] = {**inner_states, **router_states}
    processor["StartAt"] = _ROUTER
    # With no ItemSelector each iteration's input is its entry, which the router reads.
    map_state["ItemsPath"] = f"$.{ITEMS_KEY}"
    original_items = _items_of(definition["States"][plan.state], plan.input)
    entries = []
    for iteration in plan.iterations:
        entry: dict[str, Any] = {"status": iteration.status, "index": iteration.index}
        if iteration.status == "SUCCEEDED":
            entry["output"] = iteration.output
        elif iteration.status == "RESUME":
            entry.update(state=iteration.state, input=iteration.input)
        else:
            entry.update(map_input=plan.input, item=original_items[iteration.index])
        entries.append(entry)
    redrive_input = dict(plan.input) if isinstance(plan.input, dict) else {"input": plan.input}
    redrive_input[ITEMS_KEY] = entries
    return derived, redrive_input


def _items_of(map_state: dict[str, Any], state_input: Any) -> list[Any]:
    """Evaluate a simple ``$.a.b`` ItemsPath against the Map's input."""
    path = map_state.get("ItemsPath", "$")
    value = state_input
    for part in [p for p in path.lstrip("$").split(".") if p]:
        value = value[part]
    return list(value)
