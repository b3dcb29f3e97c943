"""The EventBridge event the stack's failure rule delivers, built by the local run.

On AWS, an execution that ends FAILED, TIMED_OUT or ABORTED emits a "Step Functions Execution
Status Change" event and the stack's rule sends it to the notify function. moto emits none, so the
local run builds the same event and invokes notify with it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from common.stepfunctions.failures import DETAIL_TYPE, SOURCE


def status_change_event(
    execution_arn: str,
    state_machine_arn: str,
    name: str,
    status: str,
    start_ms: int,
    stop_ms: int | None,
    input_json: str | None,
    error: str | None,
    cause: str | None,
    region: str,
    account: str,
) -> dict[str, Any]:
    """The event EventBridge delivers when an execution ends (what the local runner sends)."""
    stop = stop_ms if stop_ms is not None else start_ms
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": datetime.fromtimestamp(stop / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [execution_arn],
        "detail": {
            "executionArn": execution_arn,
            "stateMachineArn": state_machine_arn,
            "name": name,
            "status": status,
            "startDate": start_ms,
            "stopDate": stop_ms,
            "input": input_json,
            "output": None,
            "inputDetails": {"included": input_json is not None},
            "outputDetails": None,
            "error": error,
            "cause": cause,
        },
    }
