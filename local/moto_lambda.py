"""The one patch of moto's private API: Lambda invocations run our handlers in-process.

moto executes state machines for real, but invoking a Lambda function there needs Docker. We
replace ``moto.awslambda.models.LambdaFunction._invoke_lambda`` (private, hence moto is pinned to
one minor version) with a dispatcher that calls the real handler and answers the way Lambda does:
the result as JSON, or Lambda's error payload (``errorType``, ``errorMessage``) with the error
flag, so that the state machine's Retry policies match our error names exactly as on AWS.
``check_compatible`` fails loudly when moto changes what we rely on; a test calls it.
"""

from __future__ import annotations

import inspect
import json
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from moto.awslambda.models import LambdaFunction

Dispatch = Callable[[str, Any, "InvocationContext"], Any]
"""(function name, event, context) -> the handler's JSON-serializable result; raises on failure."""

_ORIGINAL = LambdaFunction._invoke_lambda


class MotoIncompatible(RuntimeError):
    """The installed moto no longer has the private method the local runner patches."""


def check_compatible() -> None:
    params = list(inspect.signature(_ORIGINAL).parameters)
    if params != ["self", "event"]:
        raise MotoIncompatible(
            "moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) changed to "
            f"{params}: update common/moto_lambda.py for this moto version"
        )
    source = inspect.getsource(LambdaFunction.invoke)
    if "self._invoke_lambda(event=body)" not in source:
        raise MotoIncompatible(
            "moto's LambdaFunction.invoke no longer calls _invoke_lambda(event=body)"
        )


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
    """A failure Lambda itself reports for the invocation (a timeout, running out of memory),
    under an errorType no Python class could carry, e.g. ``Sandbox.Timedout``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Lambda's payload for an unhandled exception, as the state machine sees it."""
    if isinstance(exc, FunctionError):
        return {"errorType": exc.error_type, "errorMessage": str(exc)}
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__)[-5:],
    }


@contextmanager
def in_process(dispatch: Dispatch) -> Iterator[None]:
    """Route every moto Lambda invocation to ``dispatch`` while the block runs."""
    check_compatible()

    def invoke(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, str | bytes) else event
        config = self.get_configuration()
        context = InvocationContext(
            function_name=self.function_name,
            invoked_function_arn=self.function_arn,
            memory_limit_in_mb=int(config.get("MemorySize") or 128),
            timeout_s=int(config.get("Timeout") or 3),
        )
        try:
            result = dispatch(self.function_name, payload, context)
        except Exception as exc:
            return json.dumps(error_payload(exc)), True, ""
        return json.dumps(result), False, ""

    LambdaFunction._invoke_lambda = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        LambdaFunction._invoke_lambda = _ORIGINAL  # type: ignore[method-assign]
