"""Named implementations found at run time, as ``fsspec.registry`` finds filesystems.

A :class:`Registry` maps a name (an object area's URL scheme, a checkpoint format's name) to an
implementation. ckptstore's own entries are class paths (``"ckptstore.files.s3:S3ObjectArea"``)
imported on first use, so core code never names a backend and the CLI does not import boto3
to open a local store. A third party adds an entry without editing ckptstore, either by calling
``register`` when its package is imported, or by declaring an entry point in its own package
metadata (group ``ckptstore.areas`` / ``ckptstore.formats``), which is read the first time a
name is not found otherwise.

Foundation layer: standard library only.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import StoreConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Implementations by name: registered objects, plus ``known`` paths imported on first use."""

    def __init__(self, what: str, group: str, known: dict[str, str], *,
                 unknown: Callable[[str], Exception], check: Callable[[Any], T]) -> None:
        #: What an entry is, for messages ("object-area backend").
        self.what = what
        #: The entry-point group third-party packages declare entries in.
        self.group = group
        self._known = dict(known)
        self._loaded: dict[str, T] = {}
        self._unknown = unknown
        self._check = check
        # Reentrant: importing an entry may register others (a plugin's module calling register).
        self._lock = threading.RLock()
        self._entry_points_read = False

    def register(self, name: str, impl: T | str, *, clobber: bool = False) -> None:
        """Add ``impl`` under ``name``: an object, or a ``"package.module:attr"`` path imported
        when first used. An existing name is refused unless ``clobber``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty name, got {name!r}")
        with self._lock:
            if not clobber and (name in self._loaded or name in self._known):
                raise ValueError(f"{self.what} {name!r} is already registered (clobber=True replaces it)")
            self._loaded.pop(name, None)
            self._known.pop(name, None)
            if isinstance(impl, str):
                self._known[name] = impl
            else:
                self._loaded[name] = self._check(impl)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests; a plugin being unloaded)."""
        with self._lock:
            self._loaded.pop(name, None)
            self._known.pop(name, None)

    def get(self, name: str) -> T:
        """The implementation registered as ``name``, imported now if it is a path."""
        with self._lock:
            found = self._loaded.get(name)
            if found is not None:
                return found
            if name not in self._known:
                self._read_entry_points()
            path = self._known.get(name)
            if path is not None:
                impl = self._check(_import(path, f"{self.what} {name!r}"))
                self._loaded[name] = impl
                self._known.pop(name, None)
                return impl
        raise self._unknown(name)  # outside the lock: its message lists the names

    def names(self) -> list[str]:
        """Every registered name, loaded or not (entry points included), in registration order."""
        with self._lock:
            self._read_entry_points()
            return list(dict.fromkeys([*self._loaded, *self._known]))

    def all(self) -> list[T]:
        """Every implementation, each imported if it was not yet."""
        return [self.get(n) for n in self.names()]

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib import metadata  # ~12 ms, paid only when a name is not built in

        for ep in metadata.entry_points(group=self.group):
            if ep.name not in self._loaded and ep.name not in self._known:
                self._known[ep.name] = ep.value


def _import(path: str, what: str) -> Any:
    """``"package.module:attr"`` (or ``"package.module.attr"``) -> the object it names."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        # One line at the CLI's edge (a missing optional dependency, a plugin's typo).
        raise StoreConfigError(f"cannot load the {what} from {path!r}: {exc}") from exc
    return obj


__all__ = ["Registry"]
