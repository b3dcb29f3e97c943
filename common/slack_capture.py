"""A local stand-in for a Slack incoming webhook, for local runs and tests.

It records every message posted to it and can be told to misbehave the way Slack does: answer
500, answer 429 with Retry-After, refuse with 404 (a revoked webhook), or hang past the client's
timeout. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "500", "429", "404", "timeout")


class SlackCapture:
    """``with SlackCapture() as slack: ... slack.url ... slack.received``."""

    def __init__(self, mode: str = "ok", hang_s: float = 15.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown Slack mode {mode!r}; expected one of {', '.join(MODES)}")
        self.mode = mode
        self.hang_s = hang_s
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.attempts += 1
                if capture.mode == "timeout":
                    time.sleep(capture.hang_s)
                    return
                if capture.mode in ("500", "429", "404"):
                    status = int(capture.mode)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "1")
                    self.end_headers()
                    self.wfile.write(
                        {500: b"internal_error", 429: b"rate_limited", 404: b"no_service"}[status]
                    )
                    return
                capture.received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="slack-capture"
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/services/T000/B000/local-capture"

    def start(self) -> SlackCapture:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
