"""Read-only commands never write: an existing store stays byte for byte, a missing one is not created, an empty file stays empty."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from tests.helpers.hardening import (
    ckpt_many,
    dir_mtime,
    one_line_error,
    shown,
    tree,
)
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()


# =========================================================================== 10. read-only commands never write


READ_COMMANDS = [
    ("runs", "list"),
    ("runs", "list", "--json", "--"),
    ("runs", "show", "r"),
    ("steps", "r"),
    ("at", "1"),
    ("checkpoints", "r"),
    ("vars", "r@1"),
    ("aliases",),
    ("aliases", "prod"),
    ("exports",),
    ("verify",),
    ("db", "current"),
    ("db", "history"),
]
FAST_READS = [("runs", "list"), ("runs", "show", "r"), ("db", "current")]


def _copies(template, tmp_path: Path, commands) -> list[Path]:
    """A store location of its own for each command: a copy of ``template``, or nothing there
    when it is None."""
    locs = []
    for i, _ in enumerate(commands):
        loc = tmp_path / f"s{i}" / "store"
        if template is not None:
            shutil.copytree(template, loc, symlinks=True)
        else:
            loc.parent.mkdir()
        locs.append(loc)
    return locs


def _run_each(commands, locs) -> list[subprocess.CompletedProcess]:
    """Each command on its own store, all at once."""
    return ckpt_many([(c, {"store": loc, "cwd": loc.parent}) for c, loc in zip(commands, locs)])


def _without_dir_mtimes(t: dict) -> dict:
    return {k: (v[0], v[2]) if v[0] == "dir" else v for k, v in t.items()}


def _unchanged_after_reads(template, tmp_path, commands) -> None:
    locs = _copies(template, tmp_path, commands)
    before = [(tree(loc), dir_mtime(loc)) for loc in locs]
    problems, touched = [], []
    for command, loc, (was, was_dir), r in zip(commands, locs, before, _run_each(commands, locs)):
        name = " ".join(command)
        if r.returncode != 0:
            problems.append(f"{name}: {shown(r)}")
        now = tree(loc)
        # Every file: name, size, mtime, mode and bytes; every directory: name and mode.
        a, b = _without_dir_mtimes(was), _without_dir_mtimes(now)
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        if diff:
            problems.append(f"{name} changed the store: {diff}")
        elif now != was or dir_mtime(loc) != was_dir:
            touched.append(name)
    assert not problems, "\n".join(problems)
    if touched:
        # Files created and removed again (SQLite's -wal and -shm beside a WAL database): the
        # directories' mtimes tell, though nothing is left. Reported, not failed.
        warnings.warn(f"created and removed files in the store directory (its mtime changed): {touched}", stacklevel=1)


def test_reading_commands_leave_an_existing_store_byte_for_byte(populated_template, tmp_path):
    _unchanged_after_reads(populated_template, tmp_path, FAST_READS)


@pytest.mark.slow
def test_every_read_only_command_leaves_an_existing_store_byte_for_byte(populated_template, tmp_path):
    _unchanged_after_reads(populated_template, tmp_path, [c for c in READ_COMMANDS if c not in FAST_READS])


def _missing(tmp_path, commands) -> None:
    problems = []
    locs = _copies(None, tmp_path, commands)
    for command, loc, r in zip(commands, locs, _run_each(commands, locs)):
        name = " ".join(command)
        if command == ("db", "history"):
            if r.returncode != 0:  # needs no store
                problems.append(f"{name}: {shown(r)}")
        else:
            try:
                one_line_error(r, str(loc))
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
        if os.listdir(loc.parent):
            problems.append(f"{name} created {os.listdir(loc.parent)}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_reading_commands_on_a_missing_store_create_nothing(tmp_path):
    _missing(tmp_path, FAST_READS)


@pytest.mark.slow
def test_every_read_only_command_on_a_missing_store_creates_nothing(tmp_path):
    _missing(tmp_path, [c for c in READ_COMMANDS if c not in FAST_READS])


def _empty(tmp_path, commands) -> None:
    template = tmp_path / "empty"
    template.mkdir()
    (template / "store.db").touch()
    problems = []
    locs = _copies(template, tmp_path, commands)
    for command, loc, r in zip(commands, locs, _run_each(commands, locs)):
        name = " ".join(command)
        after = sorted(os.listdir(loc))
        size = (loc / "store.db").stat().st_size
        if after != ["store.db"] or size != 0:
            problems.append(f"{name} wrote: the directory holds {after}, store.db is {size} bytes")
        if command == ("db", "history"):
            if r.returncode != 0:
                problems.append(f"{name}: {shown(r)}")
        elif command == ("db", "current") and r.returncode == 0:
            if "empty" not in r.stdout and "none" not in r.stdout:  # a report of what is there
                problems.append(f"{name}: {shown(r)}")
        else:
            try:
                one_line_error(r, "store.db")
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_reading_commands_leave_an_empty_database_file_empty(tmp_path):
    _empty(tmp_path, FAST_READS)


@pytest.mark.slow
def test_every_read_only_command_leaves_an_empty_database_file_empty(tmp_path):
    _empty(tmp_path, [c for c in READ_COMMANDS if c not in FAST_READS])
