"""Where a store lives: a database URL with a scheme, or a directory taken literally.

A location string is a URL only when it starts with a scheme (``sqlite://``,
``postgresql+psycopg://``, ...). Anything else is a filesystem path, and no character in it
(``?``, ``#``, ``%41``, ``@``) changes which file is opened: the SQLite URL of a directory store
is built from its parts, never by pasting the path into a URL string that would then be parsed.

This module imports neither SQLAlchemy nor TensorFlow: the CLI's quick paths use it to find a
SQLite file without paying for either.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreConfigError

#: The store used when neither ``--store`` nor ``$CKPTSTORE_URI`` names one.
DEFAULT_LOCATION = ".ckptstore"
#: The SQLite file inside a directory store.
DB_FILE = "store.db"

# RFC 3986 scheme, then "://". A Windows drive ("C:\\x") or a relative path never matches.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A database URL with a typo ("postgresql:/h/db", "postgresql//h/db", "sqlite:x.db"): taken
# as a path it would quietly create a directory tree named after it.
_URL_TYPO = re.compile(r"(?i)(sqlite|postgres(ql)?|mysql|mariadb|oracle|mssql)(\+[a-z0-9_]+)?(:(?!//)|//)")


@dataclass(frozen=True)
class Location:
    """A parsed store location: exactly one of ``url`` and ``directory`` is set."""

    text: str
    url: str | None = None
    directory: Path | None = None


def chosen(uri: str | os.PathLike[str] | None) -> str:
    """The location text in force: ``uri``, else ``$CKPTSTORE_URI``, else the nearest
    ``.ckptstore`` store at or above the working directory (:func:`discover`), else the default
    (``.ckptstore`` here, where a new store is created)."""
    if uri:
        return os.fspath(uri)
    return os.environ.get("CKPTSTORE_URI") or default_location()


def default_location() -> str:
    """The store used when neither ``--store`` nor ``$CKPTSTORE_URI`` names one: the nearest
    ``.ckptstore`` at or above the working directory, else ``.ckptstore`` (created here)."""
    return discover() or DEFAULT_LOCATION


def discover(start: str | os.PathLike[str] | None = None) -> str | None:
    """The nearest directory store named ``.ckptstore`` (one holding its database file) in
    ``start`` (default: the working directory) or above, as git finds ``.git``: the search
    stops at the root and, like git without ``GIT_DISCOVERY_ACROSS_FILESYSTEM``, at a mount
    boundary (a parent on another device), so a store on another filesystem is never picked
    up by accident. ``.ckptstore`` itself when found in ``start``, else the found path; None
    when there is none (the caller then creates ``.ckptstore`` in the working directory)."""
    here = Path(os.fspath(start) if start is not None else os.getcwd())
    try:
        device = here.stat().st_dev
    except OSError:
        return None
    current = here
    while True:
        if (current / DEFAULT_LOCATION / DB_FILE).is_file():
            return DEFAULT_LOCATION if current == here else str(current / DEFAULT_LOCATION)
        parent = current.parent
        if parent == current:
            return None
        try:
            if parent.stat().st_dev != device:
                return None
        except OSError:
            return None
        current = parent


def parse_location(uri: str | os.PathLike[str] | None) -> Location:
    """Tell a URL from a directory (see the module docstring); nothing is opened or created."""
    text = chosen(uri)
    if isinstance(uri, os.PathLike):
        # A pathlib.Path is a path even if its text happens to look like a URL.
        return Location(text, directory=Path(text).expanduser())
    if _SCHEME.match(text):
        return Location(text, url=text)
    if _URL_TYPO.match(text):
        raise StoreConfigError(
            f"{redact(text)!r} looks like a database URL but is not one (expected SCHEME://...); "
            "for a directory of that name, write it as ./NAME"
        )
    return Location(text, directory=Path(text).expanduser())


def check_existing_store(path: Path) -> None:
    """Refuse a store directory that is not there to be opened (a mistyped ``--store``): what
    :func:`ckptstore.open_store` says without ``create``, checked before anything is imported
    (the CLI's error paths answer in 0.3 s, issue 26)."""
    from .errors import StoreOpenError

    if path.exists() and not path.is_dir():
        raise StoreConfigError(f"{redact(str(path))} is a file; a store location is a directory or a database URL")
    if not path.exists():
        raise StoreOpenError(
            f"no store at {redact(str(path.absolute()))} (set --store / CKPTSTORE_URI, or create one by starting a run)"
        )
    if not (path / DB_FILE).exists():
        raise StoreOpenError(f"no store at {redact(str(path.absolute()))} ({DB_FILE} is missing)")


def sqlite_file_of(uri: str | os.PathLike[str] | None) -> Path | None:
    """The SQLite file a location names, for the quick read path, or None if it names another
    kind of store (or a URL with options, which only the full path interprets)."""
    loc = parse_location(uri)
    if loc.directory is not None:
        return loc.directory / DB_FILE
    prefix = "sqlite:///"
    url = loc.url or ""
    if not url.startswith(prefix) or "?" in url or "%" in url:
        return None
    return Path(url[len(prefix):])


# user:password@ in anything URL-like, however malformed the rest is ("postgres:/u:pw@h",
# "postgresql+pyscopg://u:pw@h/db", "u:pw@h"), and password=/key=/secret=/token= parameters.
# The secret runs to the last "@" (a password may hold "@" or "/"): masking too much is harmless.
_USERINFO = re.compile(r"(?P<user>[^\s:/@?#]*):(?!/)(?P<secret>\S*)@")
# With a scheme, everything from the first ':' after '//' to the last '@' is the password,
# whatever it holds ('/', ':' or '@' included).
_SCHEME_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.\-]*://[^\s:/@]*):(?P<secret>\S*)@")
_PARAM = re.compile(r"""(?i)(?P<key>[a-z_]*(?:password|passwd|pwd|secret|token|key)[a-z_]*=)(?P<secret>'[^']*'|"[^"]*"|[^&\s'"]*)""")


def redact(text: str) -> str:
    """``text`` with every password or key that a store location may carry replaced by ``***``.

    Applied to every message that quotes a location the user gave, well formed or not:

    >>> redact("postgresql+psycopg://bob:hunter2@db:5432/runs?sslpassword=x")
    'postgresql+psycopg://bob:***@db:5432/runs?sslpassword=***'
    """
    text = _SCHEME_USERINFO.sub(lambda m: f"{m['head']}:***@" if m["secret"] else m[0], text)
    text = _USERINFO.sub(lambda m: f"{m['user']}:***@" if m["secret"] else m[0], text)
    text = _PARAM.sub(lambda m: m["key"] + "***", text)
    # The S3 secrets of this process, should a library ever quote them.
    for var in _SECRET_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class BucketRoot:
    """An object-storage file root, ``s3://bucket/prefix`` (prefix may be empty)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


# S3 bucket names: 3-63 of lowercase letters, digits, '.', '-' (MinIO/Ceph accept the same).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def parse_bucket_root(root: str | os.PathLike[str] | None) -> BucketRoot | None:
    """``s3://bucket/prefix`` -> :class:`BucketRoot`; anything else (a directory) -> None.
    A malformed ``s3://`` root is a :class:`StoreConfigError`, never a directory named "s3:"."""
    if root is None or isinstance(root, os.PathLike):
        return None
    text = str(root)
    if not text.lower().startswith("s3://"):
        return None

    rest = text[5:]
    if "@" in rest.split("/", 1)[0]:
        raise StoreConfigError(
            f"{redact(text)!r}: credentials do not belong in the root; use the AWS environment "
            "(AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)"
        )
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise StoreConfigError(f"{redact(text)!r} is not a bucket root (expected s3://BUCKET/PREFIX)")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise StoreConfigError(f"{redact(text)!r}: the prefix must not hold empty, '.' or '..' parts")
    return BucketRoot(bucket, prefix)
