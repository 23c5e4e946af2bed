"""``/api/metrics`` on the time axes (``x=relative``, ``x=wall``): the same min/max envelope the
step axis draws, each point with the wall time it was logged at, read for the drawn points only,
so a long metric costs on a time axis what it costs by step."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="ckptstore ui needs starlette (the 'ui' extra)")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

LONG = 100_000  # steps of the long metric: enough that reading it whole dwarfs a chart's reads
SPIKE, DIP = 23_457, 76_543
LATE = 75_000  # where the metric "late" starts, after 75,000 steps of the others


def fill(store: Any) -> None:
    with store.start_run("long", flush_every=25_000) as run:
        for step in range(LONG):
            value = 50.0 if step == SPIKE else -40.0 if step == DIP else math.sin(step / 5000.0)
            metrics: dict[str, float] = {"loss": value}
            if step >= LATE:
                metrics["late"] = 1.0 / (step + 1)
            run.log(step, **metrics)
            if step in (50_000, LATE):
                run.flush()


@pytest.fixture
def client(store: Any) -> Iterator[TestClient]:
    from ckptstore.ui import create_app

    fill(store)
    with TestClient(create_app(store)) as c:
        yield c


def series(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/api/metrics", params={"run": "long", "width": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["series"][0]


def test_time_axes_draw_the_step_envelope_with_each_points_wall_time(client, store):
    by_step = series(client, key="loss")
    logged = {m.step: m.wall_time for m in store.steps("long", keys=["loss"])}
    for x in ("relative", "wall"):
        s = series(client, key="loss", x=x)
        # The very points of the step axis: every peak and trough kept, a spike of one step too.
        assert (s["steps"], s["values"], s["points"]) == (by_step["steps"], by_step["values"], LONG)
        assert len(s["steps"]) <= 2 * 500 + 2 and 50.0 in s["values"] and -40.0 in s["values"]
        assert s["times"] == [logged[step] for step in s["steps"]]
        assert s["t0"] == logged[0] == min(logged.values())
    # A metric first logged late: its own first time is the origin, not the run's.
    late = series(client, key="late", x="relative")
    assert late["steps"][0] == LATE and late["t0"] == late["times"][0]
    assert late["t0"] == next(m.wall_time for m in store.steps("long", start=LATE, stop=LATE, keys=["late"]))
    # A metric the run never logged: nothing to draw, no origin.
    assert {k: series(client, key="nope", x="wall")[k] for k in ("steps", "times", "t0")} == {"steps": [], "times": [], "t0": None}


def instructions(store: Any) -> Any:
    """A counter of the SQLite virtual machine's instructions run on the store's connections:
    what a request costs the database, the same on any machine (unlike a time)."""
    from sqlalchemy import event

    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0  # go on

    def on_connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.set_progress_handler(tick, 100)

    event.listen(store.db.engine, "connect", on_connect)
    store.db.engine.dispose()  # connections from now on count
    return count


def test_a_time_axis_costs_the_points_drawn_not_the_series(sqlite_store):
    fill(sqlite_store)
    count = instructions(sqlite_store)
    from ckptstore.ui import create_app

    with TestClient(create_app(sqlite_store)) as client:
        cost, drawn = {}, {}
        for x in ("step", "relative", "wall"):
            for key in ("loss", "late"):
                series(client, key=key, x=x)  # the first request of a connection pays its setup
                count[0] = 0
                drawn[key] = len(series(client, key=key, x=x)["steps"])
                cost[x, key] = count[0]
        count[0] = 0
        sqlite_store.steps("long", keys=["loss"])
        whole = count[0]
    for key in ("loss", "late"):
        for x in ("relative", "wall"):
            # What a time axis adds: the wall times of the drawn points (~1,000), by primary
            # key; about 20 instructions a point, whether the metric has 25,000 values or
            # 100,000. (Counted in hundreds of instructions.)
            assert cost[x, key] - cost["step", key] < drawn[key] * 50 / 100, (cost, drawn)
    # Reading the series whole, as the time axes did, costs ten times the whole chart here,
    # and grows with the series where the chart does not.
    assert cost["relative", "loss"] * 5 < whole, (cost, whole)
