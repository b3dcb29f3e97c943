"""This process's moto, served over HTTP to other processes: the local run's Lambda workers, and
the benchmarks' measured processes, which must not hold the objects they put."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

POLL_INTERVAL_S = 0.05
"""How often the server checks for shutdown (moto's ThreadedMotoServer: 0.5 s); each local
pipeline closes one."""


@contextmanager
def served() -> Iterator[str]:
    """Serve this process's moto state on a free local port, for as long as the block runs;
    yields the endpoint URL."""
    # werkzeug logs every request; the progress lines are the run's output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S}, name="moto-server"
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
