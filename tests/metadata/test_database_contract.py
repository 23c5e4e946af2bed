"""The contract every database passes: what the flows rely on from SQLite and PostgreSQL alike.

One store per database for the whole module (a SQLite file; a database on the session's
PostgreSQL server), each test with run names of its own, so the suite stays in the fast tier:
transactions are all-or-nothing, concurrent writers of one name settle through the retry helper
without an error, the queries order and compare the same way (NULLs last, both directions),
text and 64-bit integers come back exactly, a race is told from a broken constraint by the
driver's codes, and the schema is at the code's head revision.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import ckptstore
from ckptstore import retry
from ckptstore.constants import HEAD_REVISION
from ckptstore.flows.runs import start_run
from ckptstore.metadata import versions


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp(f"contract-{request.param}")
    if request.param == "sqlite":
        uri = str(root / "store")
    else:
        uri = request.getfixturevalue("pg_server").new_database()
    store = ckptstore.open_store(uri, root=root / "files")
    with store.backend.db.write() as conn:
        # A scratch table of the suite's own: constraints to break on purpose.
        conn.execute(text("CREATE TABLE contract_scratch (k VARCHAR(40) PRIMARY KEY, n INTEGER CHECK (n >= 0))"))
    try:
        yield store
    finally:
        store.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def scratch(db_store: Any, k: str, n: int) -> None:
    with db_store.backend.db.write() as conn:
        conn.execute(text("INSERT INTO contract_scratch (k, n) VALUES (:k, :n)"), {"k": k, "n": n})


# --------------------------------------------------------------------------- transactions


def test_a_write_transaction_is_all_or_nothing(db_store: Any) -> None:
    k = unique("tx")
    with pytest.raises(RuntimeError), db_store.backend.db.write() as conn:
        conn.execute(text("INSERT INTO contract_scratch (k, n) VALUES (:k, 1)"), {"k": k})
        raise RuntimeError("the caller fails after the first statement")
    with db_store.backend.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM contract_scratch WHERE k = :k"), {"k": k}).scalar() == 0
    scratch(db_store, k, 1)
    with db_store.backend.db.read() as conn:
        assert conn.execute(text("SELECT n FROM contract_scratch WHERE k = :k"), {"k": k}).scalar() == 1


def test_concurrent_writers_of_one_new_run_all_get_it(db_store: Any) -> None:
    """Eight threads create the same new run at once (SELECT, then INSERT: on PostgreSQL the
    losers hit the unique name); the retry helper makes every one of them end with the one run."""
    name = unique("race")
    barrier = threading.Barrier(8)
    ids: list[int] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            barrier.wait(10)
            rid, _ = start_run(db_store.backend, name, {}, {}, None, resume="allow")
            ids.append(rid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(ids) == 8 and len(set(ids)) == 1


def test_concurrent_metric_writers_lose_nothing(db_store: Any) -> None:
    names = [unique(f"writer{i}") for i in range(4)]

    def go(name: str) -> None:
        with db_store.start_run(name) as run:
            for step in range(150):
                run.log(step, loss=1.0 / (step + 1), step_echo=float(step))

    threads = [threading.Thread(target=go, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name in names:
        steps = db_store.steps(name)
        assert [s.step for s in steps] == list(range(150))
        assert all(s.metrics["step_echo"] == float(s.step) for s in steps)


# --------------------------------------------------------------------------- queries


def test_ordering_puts_runs_without_the_value_last_both_ways(db_store: Any) -> None:
    tag = {"suite": unique("order")}
    for name, loss in [("a", 0.5), ("b", 0.1), ("c", None)]:
        with db_store.start_run(f"{tag['suite']}-{name}", tags=tag) as run:
            run.log(1, **({"loss": loss} if loss is not None else {"other": 1.0}))
    def order(by: str) -> list[str]:
        return [r.name.rsplit("-", 1)[1] for r in db_store.runs(tags=tag, order_by=by)]
    assert order("metrics.loss.min") == ["b", "a", "c"]
    assert order("-metrics.loss.min") == ["a", "b", "c"]
    assert order("name") == ["a", "b", "c"] and order("-name") == ["c", "b", "a"]
    found = db_store.runs(tags=tag, where="metrics.loss.min > 0.2")
    assert [r.name.rsplit("-", 1)[1] for r in found] == ["a"]  # NULL compares as unknown: excluded


def test_text_round_trips_exactly(db_store: Any) -> None:
    name = unique("ünïcødé-運行-🚀")
    params = {"text": "naïve café 中文 🚀 \u0301combining", "quote": "it's \"quoted\" \\ back"}
    tags = {"who": "José Ωmega"}
    with db_store.start_run(name, params=params, tags=tags) as run:
        run.log(1, **{"lóss/ü": 0.25})
    (info,) = db_store.runs(name=name)
    assert info.name == name and info.params == params and info.tags == tags
    assert db_store.steps(name)[0].metrics == {"lóss/ü": 0.25}


def test_64_bit_steps_and_integers_round_trip_exactly(db_store: Any) -> None:
    name = unique("big")
    big_params = {"seed": 2**62 + 1, "negative": -(2**53) - 1}
    with db_store.start_run(name, params=big_params) as run:
        for step in (0, 2**31, 2**53 + 1, 2**63 - 1):
            run.log(step, x=float(step % 7))
    assert [s.step for s in db_store.steps(name)] == [0, 2**31, 2**53 + 1, 2**63 - 1]
    assert db_store.runs(name=name)[0].params == big_params


# --------------------------------------------------------------------------- errors and retries


def test_a_race_is_told_from_a_broken_constraint(db_store: Any) -> None:
    k = unique("pk")
    scratch(db_store, k, 1)
    with pytest.raises(IntegrityError) as dup:
        scratch(db_store, k, 2)
    assert retry.is_race(dup.value)
    with pytest.raises(IntegrityError) as check:
        scratch(db_store, unique("neg"), -1)
    assert not retry.is_race(check.value)


def test_retries_are_bounded_and_only_for_races(db_store: Any) -> None:
    k = unique("bounded")
    scratch(db_store, k, 1)
    calls: list[int] = []

    def duplicate() -> None:
        calls.append(1)
        scratch(db_store, k, 1)

    with pytest.raises(IntegrityError):
        retry.call(duplicate, when=retry.is_race, what="test", policy=retry.Policy(attempts=3, first_delay=0.001))
    assert len(calls) == 3
    calls.clear()

    def broken() -> None:
        calls.append(1)
        scratch(db_store, unique("neg"), -1)

    with pytest.raises(IntegrityError):
        retry.call(broken, when=retry.is_race, what="test")
    assert len(calls) == 1


# --------------------------------------------------------------------------- migrations


def test_the_schema_is_at_the_head_revision_and_opening_again_changes_nothing(db_store: Any) -> None:
    engine = db_store.backend.db.engine
    assert versions.current_revision(engine) == HEAD_REVISION
    assert versions.ensure_schema(engine) == HEAD_REVISION
    revisions = [rev for rev, _, _ in versions.history()]
    assert revisions[-1] == HEAD_REVISION and revisions == sorted(revisions)


def test_reopening_the_store_sees_what_was_committed(db_store: Any, tmp_path: Path) -> None:
    name = unique("reopen")
    with db_store.start_run(name) as run:
        run.log(3, loss=0.5)
    with ckptstore.open_store(db_store.url, root=tmp_path / "files") as again:
        assert again.steps(name)[0].metrics == {"loss": 0.5}
