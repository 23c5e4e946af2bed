"""``ckptstore ui``: serve the local web view of the store (see ``ckptstore.ui``)."""

import sys
from typing import Annotated

import typer

from .app import command, fail, open_store

DEFAULT_HOST = "127.0.0.1"  # the same as ckptstore.ui.server's; not imported, to keep start-up light
DEFAULT_PORT = 8321


@command(name="ui")
def ui(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on. Anything but loopback exposes the store to the network.")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", metavar="N", min=0, max=65535, help="Port (0: any free one).")] = DEFAULT_PORT,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    expose: Annotated[
        bool, typer.Option("--expose", help="Serve on an address that is not loopback: anyone who can reach it reads the store.")
    ] = False,
) -> None:
    """Serve a read-only web view of the store: runs, metric charts, checkpoints, diffs, aliases."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from ..ui.server import bind, is_loopback, serve, url_of
    except ImportError as exc:
        fail(f"ckptstore ui needs {exc.name}: pip install starlette uvicorn (ckptstore's 'ui' extra)")
    store = open_store(ctx, readonly=True)
    sock = bind(host, port)
    url = url_of(sock)
    # What was bound decides, not the name: "localhost" may resolve to ::1, a name to anything.
    if not is_loopback(sock.getsockname()[0]):
        if not expose:
            sock.close()
            fail(
                f"--host {host} is not a loopback address: anyone who can reach this machine could read "
                "the store (runs, params, metrics, names); add --expose to serve it there anyway"
            )
        sys.stderr.write(
            f"warning: listening on {host}: anyone who can reach this machine on port "
            f"{sock.getsockname()[1]} can read the store (runs, params, metrics, names)\n"
        )
    sys.stdout.write(f"ckptstore ui: {url}  (read-only; Ctrl-C stops it)\n")
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    serve(store, sock, asked=host)
