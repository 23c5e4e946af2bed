"""The ``ckptstore`` command line: a thin Typer shell over the library.

Every command resolves its arguments, calls one library function and formats the result: plain
or rich tables for people, ``--json`` (the records' fields, via :func:`ckptstore.to_json`) for
scripts.

The error edge is :func:`main`, and nothing else catches errors:

* a :class:`~ckptstore.errors.CkptstoreError` (or a subclass), which the library raises for
  anything the user can fix, is printed as one line ``error: <message>`` on stderr; exit 1;
* bad usage (an unknown option, a missing argument, a value out of range: steps are 0 to
  2**63-1, what the databases' 64-bit integers hold) is Click's: one line ending with the help
  to read; exit 2;
* anything else (a ``ValueError`` or ``OSError`` the library did not turn into a
  ``CkptstoreError``, a database connection lost mid-command, a bug) is an unexpected failure:
  one line naming its type, ``error: ValueError: <first line of the message>
  (CKPTSTORE_DEBUG=1 shows the traceback)``; exit 1.

``CKPTSTORE_DEBUG=1`` in the environment lets every error but a usage error end in its
traceback instead, for a bug report.

Layout: ``app.py`` holds the Typer app, the global options and :func:`main`; ``output.py`` the
printing (tables, JSON, sizes, dates, progress bars); one module per command group registers
its commands on the app. Command modules import ``app`` and ``output``, never each other;
``app`` imports no command module: this ``__init__`` imports them all, once, so that they
register.

Start-up time is part of the interface (``ckptstore runs list`` on 1,000 runs answers in under
0.3 s): at load time only Typer and the light parts of the package are imported. SQLAlchemy
comes with the store, rich only when a table or a bar goes to a terminal, TensorFlow only with
the commands that need it (``import``, ``demo``), matplotlib only with ``plot``, and the usual
``runs list`` command lines are answered before Typer parses them (see ``app.py`` for why).
"""

# Imported for their side effect: each registers its commands on the app, in this order in --help.
from . import metrics, checkpoints, versions, exports, maintenance, demo, runs, db  # noqa: F401,I001
from . import ui, tensorboard  # noqa: F401,E402  (issue 15: the web view, TensorBoard export)
from .app import app, main

__all__ = ["app", "main"]
