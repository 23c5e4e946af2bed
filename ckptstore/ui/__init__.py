"""``ckptstore ui``: a local, read-only web view of a store and the JSON API behind it: the runs
table (param and metric columns, sorted and searched in the ``runs list --where/--sort``
language), metric charts (several at once, smoothing, step or time axes, log scale), a run's
metric summary, checkpoints with their variables under readable names and their diffs,
exports and aliases, each linked to the others; every page fits a phone's width.

Facade level: it uses the store's public API only and never imports TensorFlow. Starlette and
uvicorn come with the ``ui`` extra (``pip install '/path/to/ckptstore[ui]'`` from a checkout) and are imported only
when the app is built. The charting library (uPlot, MIT) is served from ``static/``: no CDN,
so it works on machines without internet.

>>> from ckptstore.ui import create_app                 # doctest: +SKIP
>>> app = create_app(open_store("runs/", readonly=True))  # any ASGI server can serve it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .server import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'ckptstore.ui' has no attribute {name!r}")
