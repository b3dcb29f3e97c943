"""What every stage handler does around its recipe, in one decorator.

``@stage("fetch")`` adds the Lambda context to every JSON log line (Powertools), times the call
into the ``StageDuration`` EMF metric (dimension ``stage``), writes one log line naming a failure's
error type and whether the state machine will retry it, and flushes the metrics even on failure.
The handler binds the run's correlation id itself as soon as it knows it. Error messages of the
pipeline never carry secrets (see ``common.db``), so logging them is safe.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.errors import PipelineError
from common.observability import logger, metrics

Result = TypeVar("Result")
Handler = Callable[[Any, LambdaContext], Result]


def stage(
    name: str,
) -> Callable[[Handler[Result]], Handler[Result]]:
    def decorate(fn: Handler[Result]) -> Handler[Result]:
        @functools.wraps(fn)
        def run(event: Any, context: LambdaContext) -> Result:
            started = time.perf_counter()
            metrics.add_dimension(name="stage", value=name)
            try:
                return fn(event, context)
            except PipelineError as exc:
                logger.error(
                    f"{name} failed",
                    extra={
                        "error_type": type(exc).__name__,
                        "retried": exc.transient,
                        "error": str(exc),
                    },
                )
                raise
            except Exception as exc:
                logger.exception(
                    f"{name} failed unexpectedly", extra={"error_type": type(exc).__name__}
                )
                raise
            finally:
                metrics.add_metric(
                    name="StageDuration",
                    unit=MetricUnit.Milliseconds,
                    value=round((time.perf_counter() - started) * 1000.0, 1),
                )

        # Powertools' decorators are untyped: they return the wrapped handler unchanged in type.
        return cast(
            Handler[Result],
            metrics.log_metrics(logger.inject_lambda_context(run, clear_state=True)),
        )

    return decorate
