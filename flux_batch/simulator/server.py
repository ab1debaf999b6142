"""Serving the simulator with uvicorn, over HTTP or HTTPS (see :mod:`.tls`): in the foreground (the CLI)
or in a background thread.

Dropped-connection faults raise :class:`SimulatedDisconnect` inside the app so that uvicorn closes the
socket; the log filter here keeps those deliberate drops out of the error log.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from flux_batch.simulator.asgi import SimulatedDisconnect
from flux_batch.simulator.tls import TlsFiles


class _HideSimulatedDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDisconnect)


def _uvicorn_config(
    app: Any, host: str, port: int, log_level: str, tls: TlsFiles | None = None
) -> uvicorn.Config:
    logging.getLogger("uvicorn.error").addFilter(_HideSimulatedDrops())
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        ssl_certfile=str(tls.server_pem) if tls else None,
    )


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0: a free one), so the port is known before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and without
    # it every response waits ~40 ms for a delayed ACK between its header and body writes.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def base_urls(host: str, port: int, scheme: str = "http") -> dict[str, str]:
    """The API's base URLs as served: Replicate style and proxy style."""
    root = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
    return {
        "replicate": f"{root}/v1",
        "proxy": f"{root}/replicate/v1",
        "stats": f"{root}/_simulator/stats",
    }


def serve(app: Any, sock: socket.socket, log_level: str = "warning", tls: TlsFiles | None = None) -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (Ctrl-C); HTTPS with ``tls``."""
    host, port = sock.getsockname()[:2]
    uvicorn.Server(_uvicorn_config(app, host, port, log_level, tls)).run(sockets=[sock])


@contextmanager
def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, tls: TlsFiles | None = None
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields ``http://host:port`` (``https://`` with ``tls``)
    and stops on exit."""
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    config = _uvicorn_config(app, host, bound_port, "warning", tls)
    # A TLS connection the client left open holds a graceful shutdown until the peer answers the close
    # (asyncio waits 30 s); a background server is a test's, so it stops within a second instead.
    config.timeout_graceful_shutdown = 1
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator server failed to start")
            threading.Event().wait(0.01)
        yield f"{'https' if tls else 'http'}://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
