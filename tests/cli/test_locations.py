"""The command line on odd store locations and mistyped URLs: the right store, never a password."""

from __future__ import annotations

import json

import pytest

from tests.helpers.hardening import (
    MALFORMED_URLS,
    SECRET,
    SQLALCHEMY_CHECK,
    ckpt_many,
    one_line_error,
    shown,
    tree,
)
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()


# =========================================================================== 2. locations


STORE_READS = {"CKPTSTORE_QUICK": "0"}  # read through the store even on SQLite


@pytest.mark.parametrize(
    "name",
    ["weird?dir#x", pytest.param("pct%41 @x&y=z", marks=pytest.mark.slow)],
)
def test_cli_lists_the_runs_of_a_store_directory_with_url_characters(populated, tmp_path, name):
    # Built under a plain name and renamed: only how the CLI reads the name is under test here.
    loc = tmp_path / name
    populated.rename(loc)
    before = tree(tmp_path)
    calls = [
        (("runs", "list"), {"store": name, "cwd": tmp_path, "code": SQLALCHEMY_CHECK}),  # sqlite3
        (("runs", "list", "--json", "--"), {"store": str(loc), "code": SQLALCHEMY_CHECK}),
        (("runs", "list"), {"store": name, "cwd": tmp_path, "code": SQLALCHEMY_CHECK, "env": STORE_READS}),  # the store
        (("runs", "list", "--json", "--"), {"store": str(loc), "code": SQLALCHEMY_CHECK, "env": STORE_READS}),
        (("runs", "show", "r"), {"store": name, "cwd": tmp_path}),
    ]
    results = ckpt_many(calls)
    paths = []
    for (args, _), r in zip(calls, results):
        assert r.returncode == 0, (args, shown(r))
        if "show" in args:
            assert r.stdout.splitlines()[0].split() == ["name", "r"], r.stdout
            continue
        paths.append(r.stderr.strip().splitlines()[-1])
        if "--json" in args:
            assert [x["name"] for x in json.loads(r.stdout)] == ["r"], r.stdout
        else:
            lines = r.stdout.strip().splitlines()
            assert len(lines) == 2 and lines[1].split()[0] == "r", r.stdout
    # Both readers answered: the quick one (sqlite3) and the store's (SQLAlchemy).
    assert paths == ["SQLALCHEMY False", "SQLALCHEMY False", "SQLALCHEMY True", "SQLALCHEMY True"], paths
    assert set(tree(tmp_path)) == set(before)  # no file created anywhere


# =========================================================================== 3. no secret in any output


FAST_URLS = ("wrong-scheme", "one-slash")
URL_COMMANDS = (("runs", "list"), ("alias", "y", "x@1"), ("db", "current"))


def _check_no_secret(calls, results) -> list[str]:
    problems = []
    for (args, kw), r in zip(calls, results):
        if SECRET in r.stdout or SECRET in r.stderr:
            problems.append(f"{kw.get('store') or kw.get('env')} {' '.join(args)}: the password is printed: {shown(r)}")
            continue
        try:
            one_line_error(r, codes=(1, 2))
        except AssertionError as exc:
            problems.append(f"{kw.get('store') or kw.get('env')} {' '.join(args)}: not one error line: {exc}")
    return problems


@pytest.mark.parametrize("key", FAST_URLS)
@pytest.mark.slow
def test_cli_never_prints_the_password_of_a_mistyped_url(key, tmp_path):
    url = MALFORMED_URLS[key]
    calls = [(args, {"store": url, "cwd": tmp_path}) for args in URL_COMMANDS]
    # The same through the environment, Typer's path of runs list, and a command that creates.
    calls += [
        (("runs", "list"), {"env": {"CKPTSTORE_URI": url}, "cwd": tmp_path}),
        (("runs", "list", "--json", "--"), {"store": url, "cwd": tmp_path}),
        (("import", str(tmp_path), "--run", "r"), {"store": url, "cwd": tmp_path}),
    ]
    problems = _check_no_secret(calls, ckpt_many(calls))
    assert not problems, "\n".join(problems)
    made = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert made == [], made  # in particular no store named after the URL in the cwd


@pytest.mark.slow
def test_cli_never_prints_the_password_of_any_malformed_url(tmp_path):
    calls = [(args, {"store": url, "cwd": tmp_path}) for key, url in MALFORMED_URLS.items() if key not in FAST_URLS
             for args in URL_COMMANDS]
    problems = _check_no_secret(calls, ckpt_many(calls, workers=4))
    assert not problems, "\n".join(problems)
    made = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert made == [], made
