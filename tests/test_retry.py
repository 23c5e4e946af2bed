"""ckptstore.retry: bounded (attempts, deadline), jittered, and only for what ``when`` accepts.
The real races on both databases are in tests/metadata/test_database_contract.py."""

from __future__ import annotations

import sqlite3
import time

import pytest

from ckptstore import retry


class Lost(Exception):
    pass


def counting(exc: BaseException, succeed_after: int | None = None) -> tuple[list[float], object]:
    calls: list[float] = []

    def fn() -> str:
        calls.append(time.monotonic())
        if succeed_after is not None and len(calls) > succeed_after:
            return "won"
        raise exc

    return calls, fn


def test_a_race_is_retried_until_it_is_won() -> None:
    calls, fn = counting(Lost(), succeed_after=2)
    assert retry.call(fn, when=lambda e: isinstance(e, Lost), what="t", policy=retry.Policy(first_delay=0.001)) == "won"
    assert len(calls) == 3


def test_attempts_bound_the_tries_and_the_last_error_propagates() -> None:
    calls, fn = counting(Lost())
    with pytest.raises(Lost):
        retry.call(fn, when=lambda e: True, what="t", policy=retry.Policy(attempts=4, first_delay=0.0))
    assert len(calls) == 4


def test_a_deadline_bounds_a_wait_without_an_attempt_limit() -> None:
    calls, fn = counting(Lost())
    started = time.monotonic()
    with pytest.raises(Lost):
        retry.call(fn, when=lambda e: True, what="t", policy=retry.Policy(attempts=None, first_delay=0.01, max_delay=0.02, deadline=0.3))
    assert time.monotonic() - started < 1.0 and len(calls) > 3


def test_other_errors_are_not_retried() -> None:
    calls, fn = counting(ValueError("a bug, not a race"))
    with pytest.raises(ValueError):
        retry.call(fn, when=lambda e: isinstance(e, Lost), what="t")
    assert len(calls) == 1


def test_a_policy_needs_a_bound_and_waits_within_its_jittered_cap() -> None:
    with pytest.raises(ValueError, match="never retry without a bound"):
        retry.Policy(attempts=None, deadline=None)
    with pytest.raises(ValueError):
        retry.Policy(attempts=0)
    p = retry.Policy(first_delay=0.1, max_delay=0.3)
    waits = [p.delay(n) for n in range(6) for _ in range(50)]
    assert all(0.0 <= w <= 0.3 for w in waits) and len(set(waits)) > 100  # jittered, capped


def test_is_race_reads_the_drivers_codes() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER CHECK (n >= 0))")
    conn.execute("INSERT INTO t VALUES ('a', 1)")
    with pytest.raises(sqlite3.IntegrityError) as dup:
        conn.execute("INSERT INTO t VALUES ('a', 2)")
    with pytest.raises(sqlite3.IntegrityError) as check:
        conn.execute("INSERT INTO t VALUES ('b', -1)")
    assert retry.is_race(dup.value) and not retry.is_race(check.value)

    class PgError(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    assert retry.is_race(PgError("40001")) and retry.is_race(PgError("23505"))
    assert not retry.is_race(PgError("23514")) and not retry.is_race(PgError("08006"))
