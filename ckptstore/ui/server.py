"""Serving the app with uvicorn on a socket bound here, so the URL is known before serving.

Binding first (rather than letting uvicorn bind) lets ``--port 0`` pick a free port and still
print the right URL, and turns "address in use" into one clear error before anything starts.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

from ..errors import StoreConfigError

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8321
#: Host header values a loopback-bound server answers to (see ``create_app(allowed_hosts=)``).
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (``host``, ``port``); port 0 picks a free one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StoreConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StoreConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(store: "Store", sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve the app over ``store`` on ``sock`` until interrupted (Ctrl-C)."""
    import uvicorn

    from .app import create_app

    host = sock.getsockname()[0]
    # Host-header check only where it is simple and needed: an IPv4 loopback bind.
    allowed = LOOPBACK_NAMES if is_loopback(host) and ":" not in host else None
    config = uvicorn.Config(create_app(store, allowed_hosts=allowed), log_level=log_level, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
