"""A stand-in for BixArena's auth service in tests: RSA signing keys, their JWKS served over HTTP on
127.0.0.1 (``/.well-known/jwks.json``), and tokens minted with them -- or forged the ways an
attacker would (``alg: none``, HS256 keyed with the public key PEM, another key under a known kid).

The server counts fetches (``hits``) and can be switched to answer 500 or garbage (``mode``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "urn:bixarena:auth"
AUDIENCE = "urn:bixarena:leaderboard"
JWKS_PATH = "/.well-known/jwks.json"


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair published (or not) under ``kid``."""

    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str, bits: int = 2048) -> SigningKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    def jwk(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: Mapping[str, Any], *, kid: str | None = "") -> str:
        """An RS256 token; ``kid=""`` uses this key's id, ``kid=None`` leaves it out."""
        headers = {} if kid is None else {"kid": kid or self.kid}
        return jwt.encode(dict(claims), self.private, algorithm="RS256", headers=headers)


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid BixArena admin token for AUDIENCE; ``None`` values drop a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "8f0e3a52-7d1c-4b7e-9a51-1c2d3e4f5a6b",
        "email": "admin@bixarena.example",
        "roles": ["user", "admin"],
        "iat": now - 5,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def forge_unsigned(payload: Mapping[str, Any], kid: str) -> str:
    """``alg: none`` with an empty signature."""
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, payload) + "."


def forge_hs256(payload: Mapping[str, Any], secret: bytes, kid: str) -> str:
    """HS256 keyed with ``secret`` (the classic attack keys it with the RSA public key PEM)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, payload)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def closed_port_url() -> str:
    """A JWKS URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{JWKS_PATH}"


class JwksServer:
    """Serves the JWKS of ``published`` keys; see the module docstring."""

    def __init__(self, published: list[SigningKey]) -> None:
        self.published = list(published)
        self.mode = "ok"
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if self.path != JWKS_PATH or server.mode == "404":
                    self._answer(404, b"not found")
                elif server.mode == "500":
                    self._answer(500, b"internal error")
                elif server.mode == "garbage":
                    self._answer(200, b"<html>not a key set</html>")
                else:
                    document = {"keys": [key.jwk() for key in server.published]}
                    self._answer(200, json.dumps(document).encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="jwks-server"
        )
        self._initial = list(published)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def reset(self) -> None:
        """Back to the initial keys, answering normally, with no hits counted."""
        self.published = list(self._initial)
        self.mode = "ok"
        self.hits = 0

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
