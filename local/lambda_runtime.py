"""What a Lambda invocation looks like to a handler and to the state machine, without moto.

The context object a handler receives, and the error payload Lambda returns when a handler
raises. Free of moto so that the local run's worker processes (``local.lambda_workers``), which
receive contexts and send payloads, start without importing it.
"""

from __future__ import annotations

import time
import traceback
import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext


class InvocationContext(LambdaContext):
    """Lambda's context object for an in-process invocation: Powertools' ``LambdaContext`` with
    its fields filled in, and the remaining time counted from the function's timeout."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        timeout_s: int,
        aws_request_id: str | None = None,
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = invoked_function_arn
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = aws_request_id or str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"local/{self._aws_request_id}"
        self._deadline = time.monotonic() + timeout_s

    # Lambda's real context answers per invocation; Powertools' typing stub declares it static.
    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionError(Exception):
    """An invocation's failure as Lambda reports it, not raised by a handler in this process:
    Lambda's own (a timeout, running out of memory) under an errorType no Python class could
    carry, e.g. ``Sandbox.Timedout``; or a handler's failure in another process
    (``local.lambda_workers``), whose payload ``from_payload`` passes on unchanged."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.payload: dict[str, Any] = {"errorType": error_type, "errorMessage": message}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FunctionError:
        error = cls(str(payload.get("errorType", "")), str(payload.get("errorMessage", "")))
        error.payload = dict(payload)
        return error


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Lambda's payload for an unhandled exception, as the state machine sees it."""
    if isinstance(exc, FunctionError):
        return exc.payload
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__)[-5:],
    }
