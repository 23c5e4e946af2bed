"""The one retry policy for database races: bounded, with jittered exponential backoff.

A write transaction that loses a race with another process (PostgreSQL: a unique name created,
a referenced row deleted, a serialization failure or deadlock between our read and our write)
is rolled back whole; running it again from the start sees the other commit and usually
succeeds. :func:`call` does that: it runs the transaction again only for the exceptions its
``when`` predicate accepts (:func:`is_race` for database races), at most ``policy.attempts``
times and never past ``policy.deadline`` seconds, sleeping a random time between zero and an
exponentially growing cap in between ("full jitter": processes that collided once do not
collide again in lockstep). When it gives up, the last exception propagates for the caller
to translate into a one-line :class:`~ckptstore.errors.CkptstoreError`.

Foundation layer, standard library only: the database errors are recognised by their driver's
error codes (``exc.orig``), not by importing SQLAlchemy or a driver. A library (tenacity) would
do the same in more code than this module, as a new dependency of every install.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: PostgreSQL SQLSTATEs of a lost race: unique and foreign-key violations (a row another
#: transaction inserted or deleted after we read), serialization failure, deadlock.
PG_RACES = frozenset({"23505", "23503", "40001", "40P01"})
#: SQLite's extended result codes of the same unique and foreign-key violations. SQLite runs one
#: writer at a time (its write lock is taken at BEGIN IMMEDIATE), so these happen only against
#: work committed before our transaction began; retrying then finds that work.
SQLITE_RACES = frozenset({
    "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_FOREIGNKEY",
})


@dataclass(frozen=True)
class Policy:
    """How often and how long to retry: ``attempts`` tries in all (the first included), the
    n-th wait uniform in [0, min(``max_delay``, ``first_delay`` * 2**n)], and no new try once
    ``deadline`` seconds have passed since the first began. Either may be None, not both."""

    attempts: int | None = 5
    first_delay: float = 0.02
    max_delay: float = 1.0
    deadline: float | None = 30.0

    def __post_init__(self) -> None:
        if self.attempts is None and self.deadline is None:
            raise ValueError("a retry Policy needs attempts or a deadline: never retry without a bound")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"Policy.attempts must be >= 1, got {self.attempts!r}")
        if self.first_delay < 0 or self.max_delay < 0:
            raise ValueError(f"Policy delays must be >= 0, got {self.first_delay!r}, {self.max_delay!r}")

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first retry), jittered."""
        return random.uniform(0.0, min(self.max_delay, self.first_delay * (2 ** retry)))


#: For a transaction that lost a race with one other writer: a few quick tries.
RACE = Policy()


def call(fn: Callable[[], T], *, when: Callable[[BaseException], bool], what: str, policy: Policy = RACE) -> T:
    """``fn()``, run again while it raises an exception ``when`` accepts (see the module
    docstring); any other exception, and the last one once the policy is spent, propagates.

    ``fn`` must be safe to run again: one whole transaction, not a part of one.

    >>> call(lambda: tag_once(conn), when=is_race, what="tag 'prod'")   # doctest: +SKIP
    """
    started = time.monotonic()
    for retry in itertools.count():
        try:
            return fn()
        except Exception as exc:
            if not when(exc) or (policy.attempts is not None and retry >= policy.attempts - 1):
                raise
            wait = policy.delay(retry)
            if policy.deadline is not None and time.monotonic() + wait - started > policy.deadline:
                raise
            log.debug("%s lost a race (%s); retry %d in %.3f s", what, describe(exc), retry + 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def is_race(exc: BaseException) -> bool:
    """Whether ``exc`` (a SQLAlchemy ``DBAPIError`` or a driver's own error) is a database race
    that a fresh transaction may win: see :data:`PG_RACES` and :data:`SQLITE_RACES`. A CHECK or
    NOT NULL violation, a syntax error or a lost connection is not one."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is not None:
        return str(code) in PG_RACES
    return getattr(orig, "sqlite_errorname", None) in SQLITE_RACES


def describe(exc: BaseException) -> str:
    """The error's driver class and code, for a debug line (never its message: it may quote values)."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None) or ""
    return f"{type(orig).__name__} {code}".strip()


__all__ = ["PG_RACES", "Policy", "RACE", "SQLITE_RACES", "call", "describe", "is_race"]
