"""The one patch of moto's private API: Lambda invocations go to our handlers.

moto executes state machines for real, but invoking a Lambda function there needs Docker. We
replace ``moto.awslambda.models.LambdaFunction._invoke_lambda`` (private, hence moto is pinned to
one minor version) with a dispatcher that runs the real handler (in this process or in a worker
process, as the dispatcher decides) and answers the way Lambda does:
the result as JSON, or Lambda's error payload (``errorType``, ``errorMessage``) with the error
flag, so that the state machine's Retry policies match our error names exactly as on AWS.
``check_compatible`` fails loudly when moto changes what we rely on; a test calls it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.awslambda.models import LambdaFunction

from local.lambda_runtime import FunctionError, InvocationContext, error_payload

__all__ = [
    "Dispatch",
    "FunctionError",
    "InvocationContext",
    "MotoIncompatible",
    "check_compatible",
    "error_payload",
    "in_process",
]

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
            f"{params}: update local/moto_lambda.py for this moto version"
        )
    source = inspect.getsource(LambdaFunction.invoke)
    if "self._invoke_lambda(event=body)" not in source:
        raise MotoIncompatible(
            "moto's LambdaFunction.invoke no longer calls _invoke_lambda(event=body)"
        )


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
