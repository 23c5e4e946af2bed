"""``output.table`` at a width: what the user asked for is never dropped (it wraps), a column
that does not fit is dropped without taking the ones after it that do, and the dropped ones
are named on stderr."""

from __future__ import annotations

import pytest

from ckptstore.cli.output import table

COLUMNS = ["ref", "step", "size", "files", "format", "state", "aliases", "created"]
ROW = ["a-fairly-long-run-name@1000", "1000", "1.2 MiB", "3", "tf2-checkpoint", "committed, pinned", "prod", "2026-12-06 10:00"]


def _render(capsys, monkeypatch, width, **kw):
    monkeypatch.setenv("COLUMNS", str(width))
    table(COLUMNS, [ROW], **kw)
    out, err = capsys.readouterr()
    return out.splitlines(), err


def test_a_column_that_does_not_fit_leaves_the_later_ones_that_do(capsys, monkeypatch):
    lines, err = _render(capsys, monkeypatch, 80)
    assert lines[0].split() == ["ref", "step", "size", "files", "format", "aliases"]
    assert err == "(not shown for want of width: state, created)\n"
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.parametrize("width", [40, 60, 80])
def test_asked_for_columns_wrap_and_are_never_dropped(capsys, monkeypatch, width):
    lines, err = _render(capsys, monkeypatch, width, asked=7)
    shown = [h for line in lines if line.startswith("ref") for h in line.split()]
    assert set(COLUMNS[:7]) <= set(shown) and "created" not in shown
    assert err == "(not shown for want of width: created)\n"
    assert all(line.startswith(("ref", "a-fairly")) or line == "" for line in lines)  # each block repeats the first column


def test_wide_enough_or_not_a_terminal_shows_everything(capsys, monkeypatch):
    lines, err = _render(capsys, monkeypatch, 200, asked=2)
    assert lines[0].split() == COLUMNS and err == ""
    monkeypatch.delenv("COLUMNS")
    table(COLUMNS, [ROW])
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == COLUMNS and err == ""
