"""A local stand-in for a Slack incoming webhook: the local run's Slack, and the tests'.

``with SlackServer() as slack: post(slack.url, ...); slack.received`` -- it listens on 127.0.0.1
only, records every message it accepts, and answers the way Slack does. Set ``mode`` (also while
running) to misbehave: "ok"; an HTTP status such as "500", "503", "429" (with Retry-After), "400",
"403", "404", "410"; or "hang" (read the request, never answer, until the client gives up or the
server stops). Like Slack, it refuses with 400 "invalid_blocks" a message that breaks Block Kit's
limits, so a test posting through it also checks those limits. The URL ends in a random token,
``secret``, which tests look for in logs and error messages: it must never appear there.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from common.slack import (
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    SLACK_MESSAGE_TEXT,
    blocks_text,
)

# What Slack puts in the body of each refusal.
BODIES = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "rollup_error",
    503: "service_unavailable",
}


def block_problems(payload: Any) -> list[str]:
    """Where a webhook payload breaks Slack's Block Kit limits (empty when it fits): the documented
    ones per block, and the undocumented one on all the blocks' text together."""
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        return ["payload: expected an object with a text fallback"]
    blocks = payload.get("blocks", [])
    problems = [f"{len(blocks)} blocks > {MAX_BLOCKS}"] if len(blocks) > MAX_BLOCKS else []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header" and len(block["text"]["text"]) > MAX_HEADER_TEXT:
            problems.append(f"blocks[{i}]: header longer than {MAX_HEADER_TEXT}")
        if kind == "section":
            if "text" in block and len(block["text"]["text"]) > MAX_SECTION_TEXT:
                problems.append(f"blocks[{i}]: section text longer than {MAX_SECTION_TEXT}")
            fields = block.get("fields", [])
            if len(fields) > MAX_FIELDS:
                problems.append(f"blocks[{i}]: more than {MAX_FIELDS} fields")
            if any(len(f["text"]) > MAX_FIELD_TEXT for f in fields):
                problems.append(f"blocks[{i}]: a field longer than {MAX_FIELD_TEXT}")
            if "text" not in block and not fields:
                problems.append(f"blocks[{i}]: section without text or fields")
        if kind == "context" and not 0 < len(block.get("elements", [])) <= MAX_CONTEXT_ELEMENTS:
            problems.append(f"blocks[{i}]: context needs 1..{MAX_CONTEXT_ELEMENTS} elements")
    if (text := blocks_text(blocks)) > SLACK_MESSAGE_TEXT:
        problems.append(f"blocks hold {text} characters of text > {SLACK_MESSAGE_TEXT}")
    return problems


class SlackServer:
    """A webhook on 127.0.0.1 that records what it accepts; see the module docstring."""

    def __init__(self, mode: str = "ok", *, retry_after_s: int = 1) -> None:
        self.mode = mode
        self.retry_after_s = retry_after_s
        self.secret = secrets.token_hex(12)
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.attempts += 1
                if server.mode == "hang":
                    server._stopping.wait(60)
                    self.close_connection = True
                    return
                status = 200 if server.mode == "ok" else int(server.mode)
                if status == 200 and not self.path.endswith(server.secret):
                    status = 404
                if status == 200:
                    try:
                        payload = json.loads(body)
                    except ValueError:
                        payload = None
                    if payload is None:
                        status = 400
                    elif block_problems(payload):
                        self._answer(400, "invalid_blocks")
                        return
                    else:
                        server.received.append(payload)
                self._answer(status, "ok" if status == 200 else BODIES.get(status, "error"))

            def _answer(self, status: int, text: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                if status == 429:
                    self.send_header("Retry-After", str(server.retry_after_s))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return  # the request line holds the secret path

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="slack-server"
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/services/T0LOCAL/B0LOCAL/{self.secret}"

    def reset(self, mode: str = "ok") -> None:
        """Back to a clean state between tests sharing one server."""
        self.mode = mode
        self.received.clear()
        self.attempts = 0

    def start(self) -> SlackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
