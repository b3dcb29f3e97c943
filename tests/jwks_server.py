"""A stand-in for BixArena's auth service in tests: RSA signing keys, their JWKS served over HTTPS on
127.0.0.1 (``/.well-known/jwks.json``), and tokens minted with them -- or forged the ways an
attacker would (``alg: none``, HS256 keyed with the public key PEM, another key under a known kid).

The server's certificate is issued by a throwaway CA whose certificate is in ``ca_file``: a test
trusts it the way any client trusts a CA, through OpenSSL's ``SSL_CERT_FILE``. The server counts
fetches (``hits``) and can be switched to answer 500, 404, garbage, or a redirect (``mode``,
``redirect_to``); ``tls=False`` gives a plain-HTTP one, somewhere a redirect must not lead.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import RSAAlgorithm

ISSUER = "urn:bixarena:auth"
AUDIENCE = "urn:bixarena:leaderboard"
JWKS_PATH = "/.well-known/jwks.json"
MOVED_PATH = "/keys/jwks.json"
"""Always serves the key set, whatever the mode: where an https redirect may lead."""


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
    return f"https://127.0.0.1:{port}{JWKS_PATH}"


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[str, rsa.RSAPrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = (
        (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]), issuer[1])
        if issuer
        else (name, key)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
    return builder.sign(signer, hashes.SHA256())


def _tls_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1, and the file of the CA that issued it."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("test JWKS CA", ca_key, None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _certificate("127.0.0.1", key, ("test JWKS CA", ca_key))
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(leaf.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file


class JwksServer:
    """Serves the JWKS of ``published`` keys; see the module docstring."""

    def __init__(self, published: list[SigningKey], *, tls: bool = True) -> None:
        self.published = list(published)
        self.mode = "ok"
        self.redirect_to = ""
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if self.path == JWKS_PATH and server.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path not in (JWKS_PATH, MOVED_PATH) or server.mode == "404":
                    self._answer(404, b"not found")
                elif server.mode == "500" and self.path == JWKS_PATH:
                    self._answer(500, b"internal error")
                elif server.mode == "garbage" and self.path == JWKS_PATH:
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
        self.scheme = "https" if tls else "http"
        self._directory = tempfile.TemporaryDirectory(prefix="jwks-server-")
        self.ca_file = ""
        if tls:
            context, ca_file = _tls_context(Path(self._directory.name))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_file = str(ca_file)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="jwks-server"
        )
        self._initial = list(published)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base}{JWKS_PATH}"

    def reset(self) -> None:
        """Back to the initial keys, answering normally, with no hits counted."""
        self.published = list(self._initial)
        self.mode = "ok"
        self.redirect_to = ""
        self.hits = 0

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._directory.cleanup()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
