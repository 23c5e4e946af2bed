"""Constants shared by the light modules (names, quick reads) and the schema.

Kept apart from ``schema`` so that reading them does not import SQLAlchemy: the CLI's fastest
paths never do.
"""

from __future__ import annotations

#: The Alembic revision this code writes and reads. A test keeps it equal to the script head.
HEAD_REVISION = "0008"

#: Longest run, alias, tag or metric name.
NAME_MAX = 200

RUN_STATUSES = ("running", "finished", "failed")

#: What a reader may see: the stored statuses, and ``crashed`` for a running run whose process is
#: gone (derived when read, never stored; see ``ckptstore/liveness.py``).
RUN_STATES = RUN_STATUSES + ("crashed",)

#: Steps and ids are BIGINT columns; a larger number fails in the driver, so it is refused first.
INT_MAX = 2**63 - 1

#: How a restore writes its files: private copies, or hard links to the stored objects.
LINK_MODES = ("copy", "hard")
