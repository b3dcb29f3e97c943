"""A TCP front for the local PostgreSQL that can be switched off, for local runs.

The local stages reach the database through this proxy on 127.0.0.1. Switching it off closes the
listening socket and drops open connections, so a stage meets exactly what it meets when RDS is
down: connection refused, or a connection lost mid-query. The embedded server itself keeps
running, so a redrive finds the database as it was.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

_CHUNK = 256 * 1024


@dataclass
class DatabaseProxy:
    """Forwards 127.0.0.1:``port`` to the server at ``target`` (a Unix socket path or host:port).

    The forwarding runs in a child process: the stages run in this process, and a database driver
    blocking in C while holding the GIL must not starve the threads that carry its own bytes.
    Switching off terminates the child, which closes the listener and every open connection.
    """

    target: str
    port: int = 0
    _process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> int:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_serve, args=(self.target, self.port, sender), daemon=True)
        process.start()
        sender.close()
        if not receiver.poll(_START_TIMEOUT_S):
            process.terminate()
            raise RuntimeError(f"the database proxy did not start within {_START_TIMEOUT_S} s")
        self.port = receiver.recv()
        self._process = process
        return self.port

    @property
    def up(self) -> bool:
        return self._process is not None

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.join(5)


_START_TIMEOUT_S = 20
_PARENT_POLL_S = 1.0


def _serve(target: str, port: int, ready: Connection) -> None:
    # Ctrl-C is the runner's to handle (it lets the execution under way end, which needs the
    # database): the proxy in its process group must not die of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    ready.send(listener.getsockname()[1])
    ready.close()
    while True:
        client, _ = listener.accept()
        try:
            upstream = _open_upstream(target)
        except OSError:
            client.close()
            continue
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End the proxy once the process that started it is gone (killed, it had no chance to stop
    it): an orphan would keep listening on 127.0.0.1 for nobody."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)


def _open_upstream(target: str) -> socket.socket:
    if target.startswith("/"):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(target)
        return upstream
    host, _, port = target.rpartition(":")
    return socket.create_connection((host, int(port)))


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
