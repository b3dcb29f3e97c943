"""Token verification against a real JWKS served over HTTPS: what BixArena mints is accepted, every
forgery and every mismatch is refused with a named error, and the JWKS cache fetches only when it
must (TTL, one refetch on an unknown key id, not more often than the cooldown, not again before
the backoff after a failure), serves the last good keys through an outage for a bounded time, and
never fetches over plain HTTP, not even after a redirect."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from common.auth import (
    AuthConfig,
    InvalidToken,
    JwksCache,
    JwksUnavailable,
    MissingToken,
    NotAdmin,
    Principal,
    bearer_token,
    claim_roles,
    parse_jwks,
    verify,
)
from common.errors import ConfigurationError
from tests.jwks_server import (
    AUDIENCE,
    ISSUER,
    MOVED_PATH,
    JwksServer,
    SigningKey,
    claims,
    closed_port_url,
    forge_hs256,
    forge_unsigned,
)


@dataclass(frozen=True)
class Keys:
    current: SigningKey
    impostor: SigningKey  # same kid as ``current``, another key pair
    rotated: SigningKey  # not published at first


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        current=SigningKey.generate("key-2026-01"),
        impostor=SigningKey.generate("key-2026-01"),
        rotated=SigningKey.generate("key-2026-07"),
    )


@pytest.fixture(scope="module")
def running_server(keys: Keys) -> Iterator[JwksServer]:
    with JwksServer([keys.current]) as server:
        yield server


@pytest.fixture
def server(running_server: JwksServer, monkeypatch: pytest.MonkeyPatch) -> JwksServer:
    running_server.reset()
    monkeypatch.setenv("SSL_CERT_FILE", running_server.ca_file)
    return running_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jwks(server: JwksServer, clock: Clock) -> JwksCache:
    return JwksCache(server.url, ttl_s=300, timeout_s=2, refresh_cooldown_s=30, clock=clock)


@pytest.fixture
def config(server: JwksServer) -> AuthConfig:
    return AuthConfig(jwks_url=server.url, issuer=ISSUER, audience=AUDIENCE)


# --- what BixArena mints --------------------------------------------------------------------------
def test_a_valid_admin_token_gives_its_principal(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer
) -> None:
    found = verify(keys.current.sign(claims()), config, jwks)
    assert found == Principal(
        sub="8f0e3a52-7d1c-4b7e-9a51-1c2d3e4f5a6b",
        email="admin@bixarena.example",
        roles=("user", "admin"),
    )
    assert found.label == "admin@bixarena.example"
    assert server.hits == 1


def test_without_email_the_principal_is_labelled_by_its_subject(
    keys: Keys, config: AuthConfig, jwks: JwksCache
) -> None:
    found = verify(keys.current.sign(claims(email=None)), config, jwks)
    assert found.email is None and found.label == found.sub


def test_the_cognito_groups_claim_when_configured(keys: Keys, server: JwksServer) -> None:
    config = AuthConfig(
        jwks_url=server.url, issuer=ISSUER, audience=AUDIENCE, admin_claim="cognito:groups"
    )
    jwks = JwksCache(server.url)
    token = keys.current.sign(claims(roles=None, **{"cognito:groups": ["admin"]}))
    assert verify(token, config, jwks).roles == ("admin",)
    with pytest.raises(NotAdmin, match="cognito:groups claim does not include the admin role"):
        verify(keys.current.sign(claims()), config, jwks)  # admin in roles, not in the groups


@pytest.mark.parametrize(
    ("value", "roles"),
    [
        (["admin", "user"], ("admin", "user")),
        ("user admin", ("user", "admin")),
        ("user,admin", ("user", "admin")),
        (" user , admin ", ("user", "admin")),
        (["admin", 3, None], ("admin",)),
        (None, ()),
        ({"admin": True}, ()),
    ],
)
def test_roles_from_lists_and_separated_strings(value: object, roles: tuple[str, ...]) -> None:
    assert claim_roles(value) == roles


def test_a_role_string_claim_is_accepted(keys: Keys, config: AuthConfig, jwks: JwksCache) -> None:
    assert "admin" in verify(keys.current.sign(claims(roles="user admin")), config, jwks).roles


def test_a_token_without_kid_is_accepted_only_when_one_key_is_published(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer
) -> None:
    token = keys.current.sign(claims(), kid=None)
    assert verify(token, config, jwks).sub
    server.published = [keys.current, keys.rotated]
    ambiguous = JwksCache(server.url)
    with pytest.raises(InvalidToken, match="key BixArena does not publish"):
        verify(token, config, ambiguous)


def test_expiry_within_the_leeway_is_tolerated(
    keys: Keys, config: AuthConfig, jwks: JwksCache
) -> None:
    now = int(time.time())
    assert verify(keys.current.sign(claims(exp=now - 10)), config, jwks).sub


# --- refused: forgeries and mismatches -----------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: "not-a-jwt", "not a well-formed JWT"),
        (lambda k: "a.b.c", "not a well-formed JWT"),
        (lambda k: forge_unsigned(claims(), k.current.kid), "not signed with RS256"),
        (
            lambda k: forge_hs256(claims(), k.current.public_pem(), k.current.kid),
            "not signed with RS256",
        ),
        (lambda k: k.impostor.sign(claims()), "signature does not verify"),
        (lambda k: k.current.sign(claims(exp=int(time.time()) - 120)), "has expired"),
        (lambda k: k.current.sign(claims(nbf=int(time.time()) + 600)), "not valid yet"),
        (lambda k: k.current.sign(claims(iat=int(time.time()) + 600)), "not valid yet"),
        (lambda k: k.current.sign(claims(iss="urn:elsewhere:auth")), "issuer"),
        (lambda k: k.current.sign(claims(aud="urn:bixarena:ai")), "audience"),
        (lambda k: k.current.sign(claims(aud=None)), "lacks the aud claim"),
        (lambda k: k.current.sign(claims(exp=None)), "lacks the exp claim"),
        (lambda k: k.current.sign(claims(iat=None)), "lacks the iat claim"),
        (lambda k: k.current.sign(claims(sub=None)), "lacks the sub claim"),
        (lambda k: k.current.sign(claims(sub="")), "sub claim is empty"),
        (lambda k: "x" * 20_000, "too long"),
    ],
    ids=[
        "garbage",
        "three-garbage-segments",
        "alg-none",
        "hs256-keyed-with-public-pem",
        "other-key-same-kid",
        "expired",
        "not-before-in-future",
        "issued-in-future",
        "wrong-issuer",
        "wrong-audience",
        "no-audience",
        "no-exp",
        "no-iat",
        "no-sub",
        "empty-sub",
        "oversized",
    ],
)
def test_bad_tokens_are_invalid(
    keys: Keys, config: AuthConfig, jwks: JwksCache, make: object, message: str
) -> None:
    token = make(keys)  # type: ignore[operator]
    with pytest.raises(InvalidToken, match=message) as raised:
        verify(token, config, jwks)
    assert token not in "".join(traceback.format_exception(raised.value))


def test_forged_algorithms_are_refused_before_any_key_is_fetched(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer
) -> None:
    for token in (
        forge_unsigned(claims(), keys.current.kid),
        forge_hs256(claims(), keys.current.public_pem(), keys.current.kid),
    ):
        with pytest.raises(InvalidToken):
            verify(token, config, jwks)
    assert server.hits == 0


@pytest.mark.parametrize("roles", [["user"], [], "user reviewer", None])
def test_a_valid_token_without_the_admin_role_is_not_admin(
    keys: Keys, config: AuthConfig, jwks: JwksCache, roles: object
) -> None:
    with pytest.raises(NotAdmin, match="roles claim does not include the admin role"):
        verify(keys.current.sign(claims(roles=roles)), config, jwks)


def test_a_custom_admin_role(keys: Keys, server: JwksServer) -> None:
    config = AuthConfig(
        jwks_url=server.url, issuer=ISSUER, audience=AUDIENCE, admin_role="leaderboard-admin"
    )
    jwks = JwksCache(server.url)
    with pytest.raises(NotAdmin):
        verify(keys.current.sign(claims()), config, jwks)
    assert verify(keys.current.sign(claims(roles=["leaderboard-admin"])), config, jwks).sub


# --- the JWKS cache -------------------------------------------------------------------------------
def test_an_unknown_kid_refetches_once_then_fails(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer, clock: Clock
) -> None:
    verify(keys.current.sign(claims()), config, jwks)
    assert server.hits == 1
    clock.now += 31  # past the cooldown
    with pytest.raises(InvalidToken, match="key BixArena does not publish"):
        verify(keys.rotated.sign(claims()), config, jwks)
    assert server.hits == 2, "exactly one refetch for the unknown kid"
    with pytest.raises(InvalidToken):
        verify(keys.rotated.sign(claims()), config, jwks)
    assert server.hits == 2, "within the cooldown an unknown kid does not refetch"


def test_a_rotated_key_is_picked_up_by_the_refetch(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer, clock: Clock
) -> None:
    verify(keys.current.sign(claims()), config, jwks)
    server.published = [keys.current, keys.rotated]
    clock.now += 31
    assert verify(keys.rotated.sign(claims()), config, jwks).sub
    assert server.hits == 2


def test_the_key_set_is_cached_for_its_ttl(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer, clock: Clock
) -> None:
    token = keys.current.sign(claims())
    for _ in range(5):
        verify(token, config, jwks)
    assert server.hits == 1
    clock.now += 301
    verify(token, config, jwks)
    assert server.hits == 2


def test_a_removed_key_stops_working_after_the_ttl(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer, clock: Clock
) -> None:
    token = keys.current.sign(claims())
    verify(token, config, jwks)
    server.published = [keys.rotated]
    clock.now += 301
    with pytest.raises(InvalidToken, match="key BixArena does not publish"):
        verify(token, config, jwks)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("500", "answered 500"),
        ("404", "answered 404"),
        ("garbage", "not JSON"),
    ],
)
def test_a_broken_jwks_endpoint_is_unavailable(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer, mode: str, message: str
) -> None:
    server.mode = mode
    with pytest.raises(JwksUnavailable, match=message):
        verify(keys.current.sign(claims()), config, jwks)


def test_a_key_set_without_usable_keys_is_unavailable(
    keys: Keys, config: AuthConfig, jwks: JwksCache, server: JwksServer
) -> None:
    server.published = []
    with pytest.raises(JwksUnavailable, match="no RS256 signing key"):
        verify(keys.current.sign(claims()), config, jwks)


def test_an_unreachable_jwks_is_unavailable(keys: Keys, config: AuthConfig) -> None:
    jwks = JwksCache(closed_port_url(), timeout_s=1)
    with pytest.raises(JwksUnavailable, match="could not be reached"):
        verify(keys.current.sign(claims()), config, jwks)


# --- the JWKS down -------------------------------------------------------------------------------
def test_an_outage_serves_the_last_good_keys_with_no_fetch_per_request_for_a_bounded_time(
    keys: Keys, config: AuthConfig, server: JwksServer, clock: Clock
) -> None:
    jwks = JwksCache(
        server.url, ttl_s=300, max_stale_s=3600, retry_s=(5, 60), timeout_s=2, clock=clock
    )
    token = keys.current.sign(claims())
    verify(token, config, jwks)
    assert (server.hits, jwks.serving_stale_keys) == (1, False)
    server.mode = "500"
    clock.now += 301  # the keys are due for a refresh, and the refresh fails
    assert verify(token, config, jwks).sub
    assert (server.hits, jwks.serving_stale_keys) == (2, True)
    for _ in range(10):
        assert verify(token, config, jwks).sub
    assert server.hits == 2, "no fetch while the backoff runs"
    # The backoff doubles: 5 s, 10 s, 20 s, 40 s, then 60 s at most.
    for wait in (5, 10, 20, 40, 60, 60):
        clock.now += wait - 0.5
        verify(token, config, jwks)
        hits = server.hits
        clock.now += 0.5
        verify(token, config, jwks)
        assert server.hits == hits + 1, f"one fetch once {wait} s have passed"
    # An hour after the last good fetch, the old keys are no longer trusted.
    clock.now = 1000.0 + 3600
    with pytest.raises(JwksUnavailable, match="answered 500"):
        verify(token, config, jwks)
    hits = server.hits
    with pytest.raises(JwksUnavailable, match="next attempt in"):
        verify(token, config, jwks)
    assert server.hits == hits, "refused at once, without waiting on a fetch"
    # The auth service is back: the next attempt after the backoff restores everything.
    server.mode = "ok"
    clock.now += 60
    assert verify(token, config, jwks).sub
    assert jwks.serving_stale_keys is False
    server.mode = "500"
    clock.now += 301
    verify(token, config, jwks)
    clock.now += 5
    hits = server.hits
    verify(token, config, jwks)
    assert server.hits == hits + 1, "the backoff starts over at 5 s after a success"


def test_without_keys_an_outage_is_refused_at_once_until_the_backoff_passes(
    keys: Keys, config: AuthConfig, server: JwksServer, clock: Clock
) -> None:
    jwks = JwksCache(server.url, retry_s=(5, 60), timeout_s=2, clock=clock)
    server.mode = "500"
    token = keys.current.sign(claims())
    with pytest.raises(JwksUnavailable, match="answered 500"):
        verify(token, config, jwks)
    for _ in range(5):
        with pytest.raises(JwksUnavailable, match="answered 500; next attempt in 5 s"):
            verify(token, config, jwks)
    assert server.hits == 1
    server.mode = "ok"
    clock.now += 5
    assert verify(token, config, jwks).sub and server.hits == 2


def test_an_unknown_kid_during_an_outage_does_not_fetch_again(
    keys: Keys, config: AuthConfig, server: JwksServer, clock: Clock
) -> None:
    jwks = JwksCache(server.url, retry_s=(5, 60), timeout_s=2, clock=clock)
    verify(keys.current.sign(claims()), config, jwks)
    server.mode = "500"
    clock.now += 31
    for _ in range(3):
        with pytest.raises(InvalidToken):
            verify(keys.rotated.sign(claims()), config, jwks)
    assert server.hits == 2, "one failed refetch, then the backoff"


# --- HTTPS only ----------------------------------------------------------------------------------
def test_a_plain_http_jwks_url_is_refused_at_run_time() -> None:
    with pytest.raises(ConfigurationError, match="JWKS_URL: must be an https:// URL"):
        JwksCache("http://auth.example/.well-known/jwks.json")
    env = {"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}
    for url in ("http://auth.example/jwks.json", "https:///jwks.json", "file:///etc/passwd"):
        with pytest.raises(ConfigurationError, match="JWKS_URL: must be an https:// URL"):
            AuthConfig.from_env({**env, "JWKS_URL": url})


def test_a_redirect_to_plain_http_is_refused_and_not_followed(
    keys: Keys, config: AuthConfig, server: JwksServer
) -> None:
    with JwksServer([keys.current], tls=False) as plain:
        server.mode = "redirect"
        server.redirect_to = plain.url
        with pytest.raises(JwksUnavailable, match="redirected to a http URL"):
            verify(keys.current.sign(claims()), config, JwksCache(server.url))
        assert plain.hits == 0, "the plain-HTTP location was never fetched"


def test_a_redirect_to_another_https_url_is_followed(
    keys: Keys, config: AuthConfig, server: JwksServer
) -> None:
    server.mode = "redirect"
    server.redirect_to = f"{server.base}{MOVED_PATH}"
    assert verify(keys.current.sign(claims()), config, JwksCache(server.url)).sub
    assert server.hits == 2


def test_a_certificate_nobody_vouches_for_is_refused(
    keys: Keys, config: AuthConfig, server: JwksServer
) -> None:
    with JwksServer([keys.current]) as stranger:  # its own CA, which the client does not trust
        with pytest.raises(JwksUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            verify(keys.current.sign(claims()), config, JwksCache(stranger.url))
        assert stranger.hits == 0


def test_parse_jwks_keeps_only_rs256_signing_keys_of_2048_bits_or_more(keys: Keys) -> None:
    weak = SigningKey.generate("weak", bits=1024)
    good = keys.current.jwk()
    document = {
        "keys": [
            good,
            weak.jwk(),
            {**keys.rotated.jwk(), "use": "enc"},
            {**keys.rotated.jwk(), "kid": "ps", "alg": "PS256"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
    }
    assert list(parse_jwks(document)) == [keys.current.kid]
    assert parse_jwks({"keys": "nope"}) == {} and parse_jwks([]) == {}


# --- the header and the configuration ------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": ""},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer "},
    ],
)
def test_no_bearer_token_is_missing(headers: dict[str, str]) -> None:
    with pytest.raises(MissingToken, match="Authorization: Bearer"):
        bearer_token(headers)


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token({"authorization": "bearer abc.def.ghi"}) == "abc.def.ghi"
    assert bearer_token({"authorization": "Bearer  abc.def.ghi "}) == "abc.def.ghi"


def test_config_from_env_defaults_and_requirements() -> None:
    env = {"JWKS_URL": "https://auth.example/.well-known/jwks.json", "JWT_ISSUER": ISSUER}
    with pytest.raises(ConfigurationError, match="JWT_AUDIENCE not set"):
        AuthConfig.from_env(env)
    config = AuthConfig.from_env({**env, "JWT_AUDIENCE": AUDIENCE})
    assert (config.admin_claim, config.admin_role, config.leeway_s) == ("roles", "admin", 30)
    custom = AuthConfig.from_env(
        {
            **env,
            "JWT_AUDIENCE": AUDIENCE,
            "ADMIN_CLAIM": "cognito:groups",
            "ADMIN_ROLE": "ops",
            "JWT_LEEWAY_S": "5",
        }
    )
    assert (custom.admin_claim, custom.admin_role, custom.leeway_s) == ("cognito:groups", "ops", 5)
    with pytest.raises(ConfigurationError, match="JWT_LEEWAY_S"):
        AuthConfig.from_env({**env, "JWT_AUDIENCE": AUDIENCE, "JWT_LEEWAY_S": "-1"})
    with pytest.raises(ConfigurationError, match="JWT_LEEWAY_S"):
        AuthConfig.from_env({**env, "JWT_AUDIENCE": AUDIENCE, "JWT_LEEWAY_S": "\u00b2"})
    with pytest.raises(ConfigurationError, match="JWKS_URL: must be an https:// URL"):
        AuthConfig.from_env({**env, "JWT_AUDIENCE": AUDIENCE, "JWKS_URL": "file:///etc/passwd"})
