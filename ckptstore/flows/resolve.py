"""From what a user names to what the store holds: references, and the records the API returns.

Anywhere a reference is accepted, so is a record that carries one (``CheckpointInfo``,
``ExportInfo``, anything with a ``.ref``): ``store.set_alias("prod", run.freeze(...))`` works.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnknownRefError
from ..metadata import queries as Q
from ..metadata.queries import Target
from ..names import Ref, parse_ref
from ..records import CheckpointInfo
from .backend import Backend


def as_ref(ref: Any) -> Ref:
    """A parsed reference from a string, a :class:`Ref`, or a record with a ``.ref``."""
    if isinstance(ref, Ref):
        return ref
    if not isinstance(ref, str) and isinstance(getattr(ref, "ref", None), str):
        ref = ref.ref
    return parse_ref(ref)


def ref_text(ref: Any) -> str:
    if isinstance(ref, Ref):
        return ref.text
    if not isinstance(ref, str) and isinstance(getattr(ref, "ref", None), str):
        return ref.ref
    return str(ref)


def resolve(backend: Backend, ref: Any) -> Target:
    """The checkpoint or export a reference names."""
    parsed = as_ref(ref)
    with backend.db.read() as conn:
        return Q.resolve(conn, parsed)


def checkpoint_of(backend: Backend, ref: Any) -> CheckpointInfo:
    """The checkpoint a reference names; an error if it names an export."""
    target = resolve(backend, ref)
    if not isinstance(target, CheckpointInfo):
        raise UnknownRefError(f"{ref_text(ref)!r} names export {target.id}, not a checkpoint")
    return target
