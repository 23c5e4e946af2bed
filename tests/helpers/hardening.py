"""What the hardening tests (issue 16) share: snapshots of directory trees and of a store, the
command line in a subprocess, a tiny tmpfs to fill, and a child that permission bits bind.

Every hardening test compares a state before and after: the rows a store returns through its
public API and the bytes of its objects (:func:`store_state`), or every entry of a directory,
symlinks included with what they point at (:func:`tree`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptstore

#: The password every malformed URL carries; it must never be printed.
SECRET = "s3cr3t-pw"

#: How ckptstore names every temporary file or directory it creates.
TMP_SUFFIX = ".ckptstore-tmp"

#: Store locations a user may type, each carrying :data:`SECRET`, none of them usable.
MALFORMED_URLS = {
    "wrong-scheme": f"postgress://u:{SECRET}@127.0.0.1:1/db",
    "wrong-driver": f"postgresql+pyscopg://u:{SECRET}@127.0.0.1:1/db",
    "one-slash": f"postgresql:/u:{SECRET}@h/db",
    "no-slash": f"postgresql:u:{SECRET}@h/db",
    "unreachable": f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/db",
    "bad-query": f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/db?sslmode=bogus",
    "password-param": f"postgresql+psycopg://u@127.0.0.1:1/db?password={SECRET}",
    "bad-port": f"postgresql+psycopg://u:{SECRET}@127.0.0.1:notaport/db",
    "broken-ipv6": f"postgresql+psycopg://u:{SECRET}@[::1/db",
    "driver-not-installed": f"mysql://u:{SECRET}@127.0.0.1:1/db",
}


# --------------------------------------------------------------------------- snapshots


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree(root: Path, *, mtimes: bool = True) -> dict[str, tuple]:
    """Every entry under ``root`` (not ``root`` itself), by relative name: its kind, size, mtime
    (with ``mtimes``), mode and content digest; a symlink as its target and a digest of what it
    points at (followed only for reading). An unreadable file is recorded as such."""
    out: dict[str, tuple] = {}
    root = Path(root)
    if not root.exists() and not root.is_symlink():
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            when = st.st_mtime_ns if mtimes else None
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
                try:
                    pointed = _digest(p) if p.is_file() else ("dir" if p.is_dir() else "dangling")
                except OSError as exc:
                    pointed = f"unreadable: {exc.strerror}"
                out[rel] = ("link", target, pointed)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", when, stat.S_IMODE(st.st_mode))
            else:
                try:
                    content = _digest(p)
                except OSError as exc:
                    content = f"unreadable: {exc.strerror}"
                out[rel] = ("file", st.st_size, when, stat.S_IMODE(st.st_mode), content)
    return out


def dir_mtime(path: Path) -> int:
    return os.stat(path).st_mtime_ns


def store_state(store: Any) -> dict[str, Any]:
    """What a store holds, read through its public API: runs (with params, tags, status, steps),
    each run's checkpoints and their files, aliases with their history, exports, the
    bytes of every stored object, and what is left in staging."""
    import ckptstore

    runs = []
    for r in store.runs():
        try:
            cks = [(c.ref, c.prefix, sorted((f.file_name, f.digest, f.size) for f in c.files), sorted(c.aliases))
                   for c in store.checkpoints(r.name)]
            steps = [(s.step, sorted(s.metrics.items())) for s in store.steps(r.name)]
        except ckptstore.UnknownRunError:  # deleted meanwhile by the test's other process
            cks, steps = [], []
        runs.append((r.name, r.status, repr(sorted(r.params.items())), sorted(r.tags.items()), r.last_step, cks, steps))
    versions = [(a.name, a.target, a.kind, a.message, [(e.action, e.old_target, e.new_target, e.message) for e in a.history])
                for a in store.aliases()]
    exports = [(e.ref, e.run, e.step, e.digest, e.size) for e in store.exports()]
    objects = {}
    for digest, path in store.files.object_digests():
        try:
            objects[digest] = _digest(path)
        except OSError as exc:
            objects[digest] = f"unreadable: {exc.strerror}"
    staging_root = store.files.staging_root
    staging = sorted(os.listdir(staging_root)) if staging_root.is_dir() else []
    return {"runs": runs, "versions": versions, "exports": exports, "objects": objects, "staging": staging}


def temp_leftovers(directory: Path) -> list[str]:
    """Names in ``directory`` that ckptstore's temporary files and directories carry."""
    return sorted(n for n in os.listdir(directory) if n.endswith(TMP_SUFFIX))


# --------------------------------------------------------------------------- the command line


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI child: ours without any store or debug setting, TF quiet."""
    env = {k: v for k, v in os.environ.items() if k not in ("CKPTSTORE_URI", "CKPTSTORE_ROOT", "CKPTSTORE_DEBUG", "CKPTSTORE_FAULT")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


#: Runs the CLI, then says on its last stderr line whether Typer parsed the command line (it
#: imports pydantic to convert option values; the quick path of ``runs list`` parses without it).
#: Runs the CLI, then says on stderr whether it read the store through SQLAlchemy (the store)
#: or not (the quick reader, sqlite3).
SQLALCHEMY_CHECK = """
import runpy, sys
sys.argv = ["ckptstore", *sys.argv[1:]]
try:
    runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
finally:
    sys.stderr.write("\\nSQLALCHEMY " + str("sqlalchemy" in sys.modules) + "\\n")
"""


def cli_command(*args: str, store: Any = None, prefix: Sequence[str] = (), code: str | None = None) -> list[str]:
    opts = ["--store", os.fspath(store)] if store is not None else []
    head = [sys.executable, "-m", "ckptstore"] if code is None else [sys.executable, "-c", code]
    return [*prefix, *head, *opts, *args]


def ckpt(
    *args: str,
    store: Any = None,
    env: dict[str, str] | None = None,
    cwd: Any = None,
    prefix: Sequence[str] = (),
    code: str | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``python -m ckptstore [--store STORE] ARGS`` in a real subprocess (``prefix`` runs it
    through e.g. ``setpriv``, ``code`` replaces ``-m ckptstore``); stdin is closed, output
    captured as text."""
    return subprocess.run(
        cli_command(*args, store=store, prefix=prefix, code=code), capture_output=True, text=True, env=cli_env(env),
        cwd=cwd, stdin=subprocess.DEVNULL, timeout=timeout,
    )


def ckpt_many(calls: Sequence[tuple[tuple[str, ...], dict[str, Any]]], workers: int = 3) -> list[subprocess.CompletedProcess[str]]:
    """Several independent CLI runs at once (``[(args, kwargs), ...]``), results in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda c: ckpt(*c[0], **c[1]), calls))


def shown(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str, codes: Sequence[int] = (1,)) -> str:
    """The command failed as a user error: an exit status in ``codes``, exactly one line on
    stderr starting with ``error:``, no traceback anywhere; the line, checked to contain every
    one of ``needles``."""
    assert r.returncode in codes, shown(r)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, shown(r)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), shown(r)
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, shown(r)
    return r.stdout


# --------------------------------------------------------------------------- the operating system


def as_plain_user() -> list[str]:
    """A command prefix under which permission bits apply to the child: as root, ``setpriv``
    without the capabilities that bypass them (``runuser -u nobody`` cannot reach an interpreter
    under /root); as anyone else, nothing. Skips the test when neither works."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to apply")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``"64k"``) mounted at ``path`` for the block; skips the test if
    this process may not mount one (only root may)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs a tiny tmpfs, and only root may mount one")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): no full disk to test with")
    try:
        yield path
    finally:
        for _ in range(20):
            u = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
            if u.returncode == 0:
                break
            import time

            time.sleep(0.2)
        else:  # pragma: no cover - something still holds it
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextlib.contextmanager
def read_only_mount(source: Path, path: Path) -> Iterator[Path]:
    """``source`` bind-mounted read-only at ``path`` for the block (a store on a read-only
    filesystem, as on a shared NFS export or a container's read-only volume); skips the test if
    this process may not mount (only root may)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only mount needs root")
    r = subprocess.run(["mount", "--bind", str(source), str(path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({r.stderr.strip() or r.returncode})")
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            pytest.skip(f"cannot make the bind mount read-only ({r.stderr.strip() or r.returncode})")
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30)


def fill_up(directory: Path) -> Path:
    """Write a file in ``directory`` until its filesystem is full; returns that file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        block = b"\0" * 4096
        while True:
            try:
                if os.write(fd, block) < len(block):
                    break
            except OSError:
                break
        # The last pages, byte by byte: the filesystem is full to the byte.
        while True:
            try:
                if os.write(fd, b"\0") == 0:
                    break
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


# --------------------------------------------------------------------------- tiny TensorFlow models


def ab_module(a: Sequence[float] = (1.0, 2.0), b: Sequence[float] = (1.0, 2.0, 3.0), *, b_dtype: str = "float32",
              extra: bool = False) -> Any:
    """A TF2 ``tf.Module`` with variables ``a`` and ``b`` (``extra``: a third one, ``c``)."""
    import tensorflow as tf

    m = tf.Module()
    m.a = tf.Variable(list(a), dtype=tf.float32, name="a")
    m.b = tf.Variable(list(b), dtype=getattr(tf, b_dtype), name="b")
    if extra:
        m.c = tf.Variable([5.0], name="c")
    return m


def big_module(n_floats: int, fill: float = 1.0) -> Any:
    """A TF2 ``tf.Module`` whose one variable ``w`` holds ``n_floats`` float32 values."""
    import tensorflow as tf

    m = tf.Module()
    m.w = tf.Variable(tf.fill([n_floats], float(fill)), name="w")
    return m


def tf1_ab(a: Sequence[float], b: Sequence[float]) -> tuple[Any, Any, Any]:
    """A TF1 graph with variables ``a`` and ``b`` in a session of its own: (session, a, b)."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        va = tf.compat.v1.Variable(list(a), dtype=tf.float32, name="a")
        vb = tf.compat.v1.Variable(list(b), dtype=tf.float32, name="b")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    return sess, va, vb


def read_restored(directory: Path, name: str) -> Any:
    """What vanilla TensorFlow finds in a restored directory: the value of ``name`` in the
    checkpoint ``tf.train.latest_checkpoint`` names (None if it names none)."""
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(str(directory))
    if prefix is None:
        return None
    reader = tf.train.load_checkpoint(prefix)
    key = name if reader.has_tensor(name) else name + "/.ATTRIBUTES/VARIABLE_VALUE"
    return reader.get_tensor(key)


HUGE = 2**63  # one past the largest step a BIGINT holds


HUGE_TEXT = "99999999999999999999"  # past 2**63 - 1


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, repr(text)
    return text


def open_with_area(tmp_path: Path, backend: str, area_kind: str, request: pytest.FixtureRequest):  # noqa: ANN202
    uri = str(tmp_path / "store") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    if area_kind == "s3":
        root = f"s3://{request.getfixturevalue('s3_server').new_bucket()}/p"
    else:
        root = str(tmp_path / "files")
    return uri, ckptstore.open_store(uri, root=root)


def plant(path: Path, data: bytes, *, keep_mtime: bool = True) -> None:
    """Overwrite a cached file in place with bytes of the same size (as another tool or bit rot
    would), putting its mtime back so that only the content (and ctime) changed."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data[: st.st_size])
    os.chmod(path, 0o444)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def vanilla_checkpoint(directory: Path, step: int, value: float = 1.0) -> Path:
    """A plain one-shard checkpoint ``ckpt-STEP`` (TensorFlow's format, written TF-free) with
    a float32 tensor ``w`` of four values."""
    from ckptstore.bundle_writer import write_bundle

    directory.mkdir(parents=True, exist_ok=True)
    prefix = directory / f"ckpt-{step}"
    write_bundle(prefix, [("w", 1, (4,), np.full(4, value, np.float32))])
    return prefix
