"""API Gateway TOKEN authorizer in front of ``POST /admin/generate-snapshot``.

API Gateway calls it with the Authorization header (already matched against the method's
validation pattern, so a request without a bearer token never gets here) and caches its answer
per token. A valid admin token is allowed, its principal passed on; an invalid or expired token
is refused as 401 and a valid token without the admin role as 403, before the admin function
runs. When BixArena's JWKS cannot be read the authorizer fails, which API Gateway answers as 503
(``infra/admin_api.py``). One log line per decision, never the token.
"""

from __future__ import annotations

import functools
import os
import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from common import admin, auth
from common.observability import bind_correlation_id, logger


@functools.cache
def services() -> tuple[auth.AuthConfig, auth.JwksCache]:
    config = auth.AuthConfig.from_env(os.environ)
    return config, auth.JwksCache(config.jwks_url)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bind_correlation_id(str(uuid.uuid4()))
    config, jwks = services()
    try:
        principal = auth.verify(auth.bearer_token(admin.authorizer_headers(event)), config, jwks)
    except auth.JwksUnavailable:
        logger.exception("authorizer: BixArena's JWKS cannot be read; API Gateway answers 503")
        raise
    except (auth.MissingToken, auth.InvalidToken) as exc:
        logger.info("authorizer: refused", extra={"decision": "401", "reason": str(exc)})
        raise admin.Unauthorized() from None
    except auth.NotAdmin as exc:
        logger.info("authorizer: denied", extra={"decision": "403", "reason": str(exc)})
        return admin.authorizer_policy("not-admin", event["methodArn"], allow=False)
    if jwks.serving_stale_keys:
        logger.warning(admin.STALE_KEYS_WARNING)
    logger.info("authorizer: allowed", extra={"decision": "allow", "sub": principal.sub})
    return admin.allow(principal, event["methodArn"])
