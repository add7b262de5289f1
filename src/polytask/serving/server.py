"""Running the app under uvicorn on a socket bound before the model loads, so a busy port or
an unknown host is a ``ConfigError`` (exit 2) at once instead of uvicorn's exit 1 after loading."""

from __future__ import annotations

import logging
import socket

from fastapi import FastAPI

from polytask.errors import ConfigError
from polytask.extras import require

log = logging.getLogger(__name__)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (uvicorn starts listening on it)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"--host {host}: cannot listen there ({exc}); give a local address "
                          "such as 127.0.0.1 or 0.0.0.0") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc}); pick another "
                          "--port, or stop what holds this one") from None
    return sock


def run(app: FastAPI, sock: socket.socket, host: str, port: int) -> None:
    """Serve ``app`` on ``sock`` until interrupted."""
    uvicorn = require("serve", "uvicorn", feature="polytask serve")
    # uvicorn logs its URL only for sockets it binds itself.
    log.info("serving on http://%s:%d (Ctrl+C to stop)", f"[{host}]" if ":" in host else host, port)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run(sockets=[sock])
