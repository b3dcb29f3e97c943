"""Verification of BixArena JWTs for the admin endpoint.

A token is accepted only when it is RS256-signed by a key published in BixArena's JWKS, carries the
configured issuer and audience, is within its lifetime (exp and iat required, nbf checked when
present, small leeway), names a subject, and holds the admin role in the configured claim
(``roles`` for BixArena, ``cognito:groups`` for a Cognito pool). The algorithm is fixed here,
never taken from the token, so ``none`` and HS256 signed with the public key are refused.

The JWKS is fetched over HTTPS only (the URL, and any redirect it answers with: a redirect to
another scheme is refused), with a short timeout, and cached per container for a TTL; a token
naming an unknown key id triggers one refetch (key rotation), at most once per cooldown so that
forged kids cannot turn every request into a fetch. When BixArena's auth service is down, a failed
fetch is remembered and not retried before a backoff has passed (doubling up to a ceiling), so an
outage does not become one blocking fetch per request; meanwhile the last good keys keep being
served, for a bounded time after they were fetched. Errors are named for what happened and never
carry the token: MissingToken and InvalidToken (401), NotAdmin (403), JwksUnavailable (503).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from common.errors import ConfigurationError, PipelineError

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub")
MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16_384
MAX_JWKS_BYTES = 1_000_000
JWKS_TTL_S = 300.0
JWKS_TIMEOUT_S = 3.0
JWKS_REFRESH_COOLDOWN_S = 30.0
JWKS_MAX_STALE_S = 3600.0
"""How long after their last successful fetch keys are still served while refreshes fail: long
enough to ride out an auth-service outage, short enough that a revoked key stops working."""
JWKS_RETRY_S = (5.0, 60.0)
"""The wait after a failed fetch before the next one: the first, doubling up to the last."""
JWKS_MAX_REDIRECTS = 3
DEFAULT_LEEWAY_S = 30


class AuthError(PipelineError):
    """The caller could not be authenticated or authorized."""


class MissingToken(AuthError):
    """No ``Authorization: Bearer <token>`` header."""


class InvalidToken(AuthError):
    """The token is malformed, badly signed, expired, or meant for someone else."""


class NotAdmin(AuthError):
    """The token is valid but its holder does not have the admin role."""


class JwksUnavailable(AuthError):
    """BixArena's JWKS could not be fetched or read, so no token can be checked."""

    transient = True


@dataclass(frozen=True)
class AuthConfig:
    """What a valid admin token must satisfy; read from the function's environment."""

    jwks_url: str
    issuer: str
    audience: str
    admin_claim: str = "roles"
    admin_role: str = "admin"
    leeway_s: int = DEFAULT_LEEWAY_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuthConfig:
        missing = [name for name in ("JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE") if not env.get(name)]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} not set")
        jwks_url = env["JWKS_URL"]
        if not is_https(jwks_url):
            raise ConfigurationError("JWKS_URL: must be an https:// URL")
        raw_leeway = env.get("JWT_LEEWAY_S") or str(DEFAULT_LEEWAY_S)
        if not raw_leeway.isdecimal() or int(raw_leeway) > 300:
            raise ConfigurationError("JWT_LEEWAY_S: expected an integer of seconds in 0..300")
        return cls(
            jwks_url=jwks_url,
            issuer=env["JWT_ISSUER"],
            audience=env["JWT_AUDIENCE"],
            admin_claim=env.get("ADMIN_CLAIM") or "roles",
            admin_role=env.get("ADMIN_ROLE") or "admin",
            leeway_s=int(raw_leeway),
        )


@dataclass(frozen=True)
class Principal:
    """Who an accepted token speaks for."""

    sub: str
    email: str | None
    roles: tuple[str, ...]

    @property
    def label(self) -> str:
        """How runs started by this principal are attributed (``requested_by``)."""
        return (self.email or self.sub)[:200]


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an ``Authorization: Bearer`` header; ``headers`` keys are lower-case."""
    value = headers.get("authorization", "").strip()
    scheme, _, token = value.partition(" ")
    if not value or scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("an 'Authorization: Bearer <token>' header is required")
    return token.strip()


def is_https(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme == "https" and bool(parsed.hostname)


class _HttpsRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to another https:// URL, and only a few times."""

    max_redirections = JWKS_MAX_REDIRECTS

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not is_https(newurl):
            fp.close()
            scheme = urlparse(newurl).scheme or "relative"
            raise JwksUnavailable(
                f"the JWKS endpoint redirected to a {scheme} URL; only https:// is followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_jwks(url: str, timeout_s: float = JWKS_TIMEOUT_S) -> dict[str | None, RSAPublicKey]:
    """GET the JWKS over HTTPS and keep its RS256 signing keys, indexed by key id."""
    if not is_https(url):
        raise ConfigurationError("JWKS_URL: must be an https:// URL")
    opener = urllib.request.build_opener(
        _HttpsRedirectsOnly(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
    )
    try:
        with opener.open(url, timeout=timeout_s) as response:
            raw = response.read(MAX_JWKS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise JwksUnavailable(f"the JWKS endpoint answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JwksUnavailable(f"the JWKS endpoint could not be reached ({reason})") from None
    if len(raw) > MAX_JWKS_BYTES:
        raise JwksUnavailable("the JWKS document is too large")
    try:
        document = json.loads(raw)
    except ValueError:
        raise JwksUnavailable("the JWKS document is not JSON") from None
    keys = parse_jwks(document)
    if not keys:
        raise JwksUnavailable("the JWKS holds no RS256 signing key")
    return keys


def parse_jwks(document: Any) -> dict[str | None, RSAPublicKey]:
    """RSA signing keys usable with RS256 (at least 2048 bits); other keys are ignored."""
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str | None, RSAPublicKey] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            key = RSAAlgorithm.from_jwk(entry)
        except (jwt.exceptions.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
            kid = entry.get("kid")
            keys[kid if isinstance(kid, str) else None] = key
    return keys


class JwksCache:
    """The JWKS of one URL: cached for ``ttl_s``, refetched once on an unknown key id, and while
    fetches fail, the last good keys served for up to ``max_stale_s`` with no fetch before the
    backoff has passed."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = JWKS_TTL_S,
        timeout_s: float = JWKS_TIMEOUT_S,
        refresh_cooldown_s: float = JWKS_REFRESH_COOLDOWN_S,
        max_stale_s: float = JWKS_MAX_STALE_S,
        retry_s: tuple[float, float] = JWKS_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not is_https(url):
            raise ConfigurationError("JWKS_URL: must be an https:// URL")
        self.url = url
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.refresh_cooldown_s = refresh_cooldown_s
        self.max_stale_s = max_stale_s
        self.retry_s = retry_s
        self._clock = clock
        self._keys: dict[str | None, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._failures = 0
        self._retry_at: float | None = None
        self._last_failure = ""
        self._lock = threading.Lock()

    def key_for(self, kid: str | None) -> RSAPublicKey:
        with self._lock:
            if self._fetched_at is None or self._age() >= self.ttl_s:
                self._refresh()
            key = self._lookup(kid)
            if key is None and self._age() >= self.refresh_cooldown_s:
                self._refresh()
                key = self._lookup(kid)
        if key is None:
            raise InvalidToken("the token is signed with a key BixArena does not publish")
        return key

    @property
    def serving_stale_keys(self) -> bool:
        """Whether the keys in use are older than the TTL because refreshes fail."""
        return self._fetched_at is not None and self._age() >= self.ttl_s

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    def _refresh(self) -> None:
        """Fetch now unless a recent failure says to wait; on failure keep the last good keys
        while they are fresh enough, else raise JwksUnavailable."""
        now = self._clock()
        if self._retry_at is not None and now < self._retry_at:
            if self._age() < self.max_stale_s:
                return
            raise JwksUnavailable(
                f"{self._last_failure}; next attempt in {self._retry_at - now:.0f} s"
            )
        try:
            keys = fetch_jwks(self.url, self.timeout_s)
        except JwksUnavailable as exc:
            first, ceiling = self.retry_s
            self._failures += 1
            self._retry_at = now + min(ceiling, first * 2 ** (self._failures - 1))
            self._last_failure = str(exc)
            if self._age() < self.max_stale_s:
                return
            raise
        self._keys, self._fetched_at = keys, now
        self._failures, self._retry_at = 0, None

    def _lookup(self, kid: str | None) -> RSAPublicKey | None:
        if kid is None and len(self._keys) == 1:
            # A token without a key id is unambiguous only when a single key is published.
            return next(iter(self._keys.values()))
        return self._keys.get(kid)


_DECODE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not meant for this service (audience)"),
    (jwt.InvalidIssuerError, "the token was not issued by BixArena's auth service (issuer)"),
    (jwt.InvalidSignatureError, "the token signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token is not signed with RS256"),
)


def verify(token: str, config: AuthConfig, jwks: JwksCache) -> Principal:
    """Check a token end to end and return its principal; raise a named AuthError otherwise."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("the token is not a well-formed JWT") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("the token is not signed with RS256")
    kid = header.get("kid")
    key = jwks.key_for(kid if isinstance(kid, str) else None)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.leeway_s,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"the token lacks the {exc.claim} claim") from None
    except jwt.PyJWTError as exc:
        message = next((m for kind, m in _DECODE_ERRORS if isinstance(exc, kind)), None)
        raise InvalidToken(message or "the token is not a valid JWT") from None
    return principal(claims, config)


def principal(claims: Mapping[str, Any], config: AuthConfig) -> Principal:
    """The principal of verified claims, if it holds the admin role."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("the token's sub claim is empty")
    roles = claim_roles(claims.get(config.admin_claim))
    if config.admin_role not in roles:
        raise NotAdmin(f"the token's {config.admin_claim} claim does not include the admin role")
    email = claims.get("email")
    return Principal(
        sub=sub, email=email if isinstance(email, str) and email else None, roles=roles
    )


def claim_roles(value: Any) -> tuple[str, ...]:
    """Roles from a list claim, or from a space- or comma-separated string claim."""
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[\s,]+", value) if part)
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, str))
    return ()
