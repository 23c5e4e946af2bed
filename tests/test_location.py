"""Store locations: directories named with URL characters are directories; no password of any location is ever shown."""

from __future__ import annotations

import logging
import os
import sqlite3
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers.hardening import (
    MALFORMED_URLS,
    SECRET,
    one_line,
    tree,
)
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
)
from ckptstore.location import redact  # noqa: E402

# =========================================================================== 2. locations


WEIRD_DIRS = ["weird?dir#x", "pct%41", "user@host:5432", "with space", "file:x?mode=ro", "a?b=c&d#e%20f @g"]


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
@pytest.mark.parametrize("name", WEIRD_DIRS)
def test_a_store_directory_named_with_url_characters_is_exactly_that_directory(tmp_path, monkeypatch, name, as_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    monkeypatch.chdir(parent)  # a relative location too: nothing may appear anywhere else in the cwd
    outside = tree(tmp_path)

    loc = parent / name
    with ckptstore.open_store(loc if as_path else str(loc)) as s, s.start_run("r") as run:
        run.log(1, x=1.0)
    assert os.listdir(parent) == [name]
    assert (loc / "store.db").is_file()
    # The run is in that very file (read without ckptstore, which cannot be fooled by its name).
    con = sqlite3.connect(f"file:{quote(str(loc / 'store.db'))}?mode=ro", uri=True)
    try:
        assert [r[0] for r in con.execute("SELECT name FROM runs")] == ["r"]
    finally:
        con.close()

    # Opened again by its relative name, as text and as a Path: the same store, nothing new.
    for again in (name, Path(name)):
        with ckptstore.open_store(again, create=False) as s:
            assert [r.name for r in s.runs()] == ["r"]
    assert os.listdir(parent) == [name]
    after = tree(tmp_path)
    assert {k for k in after if not k.startswith("parent")} == {k for k in outside if not k.startswith("parent")}


# =========================================================================== 3. no secret in any output


REDACTED = [
    "postgresql+psycopg://u:s3cr3t-pw@h:5432/db",
    "postgress://u:s3cr3t-pw@127.0.0.1:1/db",
    "postgresql+pyscopg://u:s3cr3t-pw@127.0.0.1:1/db",
    "postgresql:/u:s3cr3t-pw@h/db",
    "postgresql:u:s3cr3t-pw@h/db",
    "postgresql://u:s3cr3t-pw@h/db?sslmode=bogus",
    "postgresql+psycopg://u@h/db?password=s3cr3t-pw",
    "postgresql+psycopg://u@h/db?sslmode=require&password=s3cr3t-pw&x=1",
    "postgresql+psycopg://u@h/db?PASSWORD=s3cr3t-pw",
    "postgresql+psycopg://u@h/db?sslpassword=s3cr3t-pw",
    "postgresql://u:p@ss-s3cr3t-pw@h/db",  # '@' in the password
    "postgresql://u:s3cr3t-pw/x@h/db",  # '/' in the password
    "postgresql://u:s3cr3t-pw:more@h/db",  # ':' in the password
    "postgresql://u:s3cr3t%2Dpw@h/db",  # percent-encoded
    "postgresql://:s3cr3t-pw@h/db",  # no user name
    "cannot open postgresql://u:s3cr3t-pw@h/db: connection refused",  # inside a sentence
    "'postgresql://u:s3cr3t-pw@h/db'",  # quoted
    "host=h user=u password=s3cr3t-pw dbname=db",  # a libpq keyword string
    "u:s3cr3t-pw@h/db",  # no scheme at all
    "postgresql+psycopg://u:s3cr3t-pw@[::1/db",  # broken IPv6 host
]


@pytest.mark.parametrize("text", REDACTED)
def test_redact_masks_the_password_of_any_location(text):
    masked = redact(text)
    assert "s3cr3t" not in masked, masked
    assert "\n" not in masked
    assert "***" in masked
    # What is left still says where: the host survives.
    assert any(h in masked for h in ("h/db", "h:5432/db", "127.0.0.1", "host=h", "[::1/db")), masked


@pytest.mark.parametrize(
    "text",
    ["/tmp/store", ".ckptstore", "postgresql+psycopg://u@h:5432/db", "sqlite:////tmp/x/store.db",
     "weird?dir#x", "postgresql+psycopg://u@h/db?sslmode=require", "no run named 'r'"],
)
def test_redact_leaves_text_without_a_secret_as_it_is(text):
    assert redact(text) == text


@pytest.mark.parametrize("create", [True, False], ids=["create", "open"])
@pytest.mark.parametrize("url", list(MALFORMED_URLS.values()), ids=list(MALFORMED_URLS))
def test_open_store_never_shows_the_password_of_a_malformed_url(url, create, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CkptstoreError) as info:
        ckptstore.open_store(url, create=create)
    text = one_line(info.value)
    assert SECRET not in text, text
    # Nor in what a traceback would print (chained exceptions included), nor in any log record.
    assert SECRET not in "".join(traceback.format_exception(info.value)), text
    assert SECRET not in caplog.text
    # And no file or directory whose name carries the password was made in the cwd.
    made = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not [m for m in made if "s3cr3t" in m], made


# =========================================================================== found in review
@pytest.mark.parametrize("text", [
    "postgresql://bob:/s3cr3t-pw@h/db",
    "postgresql://bob:s3cr3t-pw:more@h/db",
    "x password='s3cr3t-pw and more' y",
    'postgresql://u@h/db?password="s3cr3t-pw x"',
])
def test_redact_masks_passwords_with_slashes_colons_and_quotes(text):
    from ckptstore.location import redact

    assert "s3cr3t" not in redact(text)
