"""Serving the app with uvicorn on a socket bound here, so the URL is known before serving.

Binding first (rather than letting uvicorn bind) lets ``--port 0`` pick a free port and still
print the right URL, and turns "address in use" into one clear error before anything starts.
"""

from __future__ import annotations

import errno
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
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, ::ffff:127.x, localhost)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


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
        # The usual cause is a second 'ckptstore ui' on the default port: say how to pick another.
        hint = "; choose another with --port N (0: any free one)" if exc.errno == errno.EADDRINUSE else ""
        raise StoreConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def allowed_hosts(sock: socket.socket, asked: str = "") -> list[str] | None:
    """The Host header values a server bound on ``sock`` answers, or None (any) if it is not
    bound to loopback. Every loopback bind checks: a web page on another site could otherwise
    read the store through DNS rebinding (its name re-pointed at 127.0.0.1 or ::1), whatever
    the address family. Answered: the loopback names, the bound address as a URL shows it
    (``127.0.0.2``, ``[::1]``) and the name the user asked to listen on (``localhost``)."""
    bound = sock.getsockname()[0]
    if not is_loopback(bound):
        return None
    names = [*LOOPBACK_NAMES, "[::1]", f"[{bound}]" if ":" in bound else bound]
    if asked and asked not in names:
        names.append(asked if ":" not in asked or asked.startswith("[") else f"[{asked}]")
    return list(dict.fromkeys(n.lower() for n in names))


def serve(store: Store, sock: socket.socket, *, log_level: str = "warning", asked: str = "") -> None:
    """Serve the app over ``store`` on ``sock`` until interrupted (Ctrl-C); ``asked``: the
    host name the user gave (also answered, see :func:`allowed_hosts`)."""
    import uvicorn

    from .app import create_app

    allowed = allowed_hosts(sock, asked)
    config = uvicorn.Config(create_app(store, allowed_hosts=allowed), log_level=log_level, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
