"""Object areas by the URL scheme of a store's root, as ``fsspec.registry`` finds filesystems.

``file`` (a directory; a root without a scheme is one) and ``s3`` are ckptstore's own, imported
on first use (``files.s3`` needs boto3 only when a bucket is opened). Another backend is added
without editing ckptstore (docs/architecture.md, "Adding an object-area backend")::

    from ckptstore.files.registry import register_area
    register_area("memory", MemoryArea)                    # a class
    register_area("gs", "mypkg.gcs:GcsObjectArea")         # or a path, imported when used

or with an entry point in the backend's own package: group ``ckptstore.areas``, name the scheme,
value ``"mypkg.gcs:GcsObjectArea"``. ``open_store(root="memory://x")`` then opens it.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import StoreConfigError
from ..location import redact
from ..registry import Registry
from .area import ObjectArea

#: The scheme of a root that is a local directory.
LOCAL = "file"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")


def _unknown(scheme: str) -> Exception:
    return StoreConfigError(
        f"no object-area backend for {scheme}:// roots (known: {', '.join(AREAS.names())}; "
        "see 'Adding an object-area backend' in docs/architecture.md)"
    )


def _check(impl: Any) -> type[ObjectArea]:
    if not (isinstance(impl, type) and issubclass(impl, ObjectArea)):
        raise TypeError(f"an object-area backend must be an ObjectArea subclass, got {impl!r}")
    return impl


#: Object-area classes by URL scheme.
AREAS: Registry[type[ObjectArea]] = Registry(
    "object-area backend", "ckptstore.areas",
    {LOCAL: "ckptstore.files.local:LocalObjectArea", "s3": "ckptstore.files.s3:S3ObjectArea"},
    unknown=_unknown, check=_check,
)


def register_area(scheme: str, cls: type[ObjectArea] | str, *, clobber: bool = False) -> None:
    """Open roots ``scheme://...`` with ``cls`` (a class, or ``"package.module:Class"``)."""
    AREAS.register(scheme.lower(), cls, clobber=clobber)


def scheme_of(root: str | os.PathLike[str]) -> str:
    """The registry key of a root: its URL scheme in lower case, or ``file`` for a path (a
    ``pathlib.Path`` is a path whatever its text looks like)."""
    if isinstance(root, os.PathLike):
        return LOCAL
    m = _SCHEME.match(root)
    return m.group(1).lower() if m else LOCAL


def open_area(root: str | os.PathLike[str], *, fsync: bool = False) -> ObjectArea:
    """The object area at ``root``, by its scheme's registered backend (nothing is created yet)."""
    scheme = scheme_of(root)
    cls = AREAS.get(scheme)
    try:
        return cls.from_url(os.fspath(root), fsync=fsync)
    except StoreConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise StoreConfigError(f"{redact(os.fspath(root))!r} is not a {scheme}:// root: {exc}") from None


__all__ = ["AREAS", "LOCAL", "open_area", "register_area", "scheme_of"]
