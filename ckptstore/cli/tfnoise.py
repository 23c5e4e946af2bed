"""Keep TensorFlow's start-up noise off the command line's stderr.

Importing TensorFlow makes its C++ runtime write lines to file descriptor 2 that no setting
silences on every machine: absl's ``WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR`` banner, then ``I0000 ... port.cc] oneDNN custom operations are
on ...`` and ``cpu_feature_guard`` lines on CPUs where TensorFlow turns oneDNN on, whatever
``TF_CPP_MIN_LOG_LEVEL`` says (absl logs them before TensorFlow reads it). A command promises
its output, or one error line; those lines broke that promise.

Turning oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``) would silence one of them but changes
numerics, so instead the command line wraps the one import of ``tensorflow`` (whichever module
triggers it, through an import hook): fd 2 points at a temporary file while the package
executes, then everything it wrote comes back to the real stderr except the informational and
warning lines in absl's format (``I``/``W`` + date), the banner, and the continuation line of
the CPU-instructions notice. Errors (``E``/``F`` lines) and anything else pass through, in
order. The library itself changes nothing: only ``cli.main`` installs the hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_NOISE = re.compile(
    rb"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} \d\d:\d\d:\d+(?:\.\d+)?\s+\d+ [^\]\s]+:\d+\] .*"
    rb"|To enable the following instructions: .*in other operations, rebuild TensorFlow with the appropriate compiler flags\.)\r?$"
)


def without_noise(data: bytes) -> bytes:
    """``data`` (what was written to stderr) without TensorFlow's start-up lines."""
    kept = [line for line in data.splitlines(keepends=True) if not _NOISE.match(line.rstrip(b"\n"))]
    return b"".join(kept)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _captured_fd2():
            self.loader.exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, then wraps its loader (once)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        uninstall()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


_FINDER = _Finder()


def install() -> None:
    """Filter TensorFlow's start-up lines when (if ever) this process imports it."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


class _captured_fd2:
    """fd 2 into a temporary file for the block; what was written comes back filtered."""

    def __enter__(self) -> None:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        self.saved: int | None = None
        try:
            self.tmp = tempfile.TemporaryFile(prefix="ckptstore-tf-stderr-")
            self.saved = os.dup(2)
            os.dup2(self.tmp.fileno(), 2)
        except OSError:  # no fd 2, no temporary directory: let the noise through
            if self.saved is not None:
                os.close(self.saved)
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            return
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        os.dup2(self.saved, 2)
        os.close(self.saved)
        try:
            self.tmp.seek(0)
            rest = without_noise(self.tmp.read())
        finally:
            self.tmp.close()
        if rest:
            try:
                os.write(2, rest)
            except OSError:
                pass
