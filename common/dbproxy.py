"""A TCP front for the local PostgreSQL that can be switched off, for local runs.

The local stages reach the database through this proxy on 127.0.0.1. Switching it off closes the
listening socket and drops open connections, so a stage meets exactly what it meets when RDS is
down: connection refused, or a connection lost mid-query. The embedded server itself keeps
running, so a redrive finds the database as it was.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

_CHUNK = 256 * 1024


@dataclass
class DatabaseProxy:
    """Forwards 127.0.0.1:``port`` to the server at ``target`` (a Unix socket path or host:port)."""

    target: str
    port: int = 0
    _listener: socket.socket | None = None
    _connections: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(
            target=self._accept, args=(listener,), daemon=True, name="db-proxy"
        ).start()
        return self.port

    @property
    def up(self) -> bool:
        return self._listener is not None

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()

    def _open_upstream(self) -> socket.socket:
        if self.target.startswith("/"):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            return upstream
        host, _, port = self.target.rpartition(":")
        return socket.create_connection((host, int(port)))

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._open_upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._connections.discard(src)
                self._connections.discard(dst)
