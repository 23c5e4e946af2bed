"""The JSON API behind the pages: read-only views of the store, as ``--json`` prints them.

Every answer is built from the store's public API and turned into JSON by the records' own
serializer (:func:`ckptstore.to_json`), so a run, a checkpoint or an alias has the same keys
here as in ``ckptstore ... --json``. Query parameters are checked here: a bad one is a 400 with
a message; an unknown run, checkpoint or alias is the store's lookup error, a 404 (see
``app.py``). No endpoint writes: the store is opened read-only as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..constants import INT_MAX, RUN_STATES
from ..records import CheckpointInfo, ExportInfo, diff_json, to_json
from .downsample import minmax
from .table import rows_json, runs_table

if TYPE_CHECKING:
    from ..store import Store

#: The x axes of ``/api/metrics``: step, time since the metric's first value, wall-clock time.
X_AXES = ("step", "relative", "wall")
MAX_WIDTH = 10_000  # pixels; a wider chart gains nothing
MAX_RUNS_PER_CHART = 50
#: Bounds on any request, whatever the endpoint: a request's cost stays small (3,000 ``run=``
#: once tied the server up; ``benchmarks/ui.py`` times the endpoints).
MAX_PARAMS = 100
MAX_VALUE_CHARS = 4096
MAX_TAGS = 20


class BadRequest(Exception):
    """A query parameter the API refuses: answered with 400 and this message."""


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` (records, or lists and dicts of them) as JSON, with the records' field names."""
    body = json.dumps(to_json(data), ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def plain_json_response(data: Any) -> Response:
    """Data already made of plain JSON values (the metrics series: thousands of numbers, which
    :func:`to_json` would walk one by one to no effect)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json")


def checkpoint_json(ck: CheckpointInfo) -> dict[str, Any]:
    """A checkpoint as ``checkpoints list --json`` prints it: its fields, its ref and pinned."""
    return {**to_json(ck), "ref": ck.ref, "pinned": ck.pinned}


def export_json(e: ExportInfo) -> dict[str, Any]:
    """An export as ``exports list --json`` prints it: its fields and its ref."""
    return {**to_json(e), "ref": e.ref}


# --------------------------------------------------------------------------- parameters


def _one(request: Request, name: str, *, required: bool = False) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} is given {len(values)} times; give it once")
    if not values or values[0] == "":
        if required:
            raise BadRequest(f"the query parameter {name} is required")
        return None
    return values[0]


def _int(request: Request, name: str, *, default: int | None = None, low: int = 0, high: int = INT_MAX) -> int | None:
    text = _one(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def _known(request: Request, allowed: set[str]) -> None:
    items = request.query_params.multi_items()
    if len(items) > MAX_PARAMS:
        raise BadRequest(f"{len(items)} query parameters is too many (at most {MAX_PARAMS})")
    long = next((k for k, v in items if len(v) > MAX_VALUE_CHARS or len(k) > MAX_VALUE_CHARS), None)
    if long is not None:
        raise BadRequest(f"a value of {long[:50]!r} is too long (at most {MAX_VALUE_CHARS} characters)")
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}; this endpoint takes {', '.join(sorted(allowed)) or 'none'}")


def _runs(request: Request, *, required: bool = True) -> list[str]:
    """The ``run=`` values, each once, at most :data:`MAX_RUNS_PER_CHART`."""
    runs = list(dict.fromkeys(request.query_params.getlist("run")))
    if required and not runs:
        raise BadRequest("the query parameter run is required (one or more)")
    if len(runs) > MAX_RUNS_PER_CHART:
        raise BadRequest(f"at most {MAX_RUNS_PER_CHART} runs at once, got {len(runs)}")
    return runs


def _tags(request: Request) -> dict[str, str]:
    tags: dict[str, str] = {}
    items = request.query_params.getlist("tag")
    if len(items) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tag filters, got {len(items)}")
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BadRequest(f"tag must be KEY=VALUE, got {item!r}")
        tags[key] = value
    return tags


# --------------------------------------------------------------------------- endpoints


class Api:
    """The endpoints over one open store (see the module docstring and docs/ui.md)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Set up once, at startup, what the first chart request would otherwise pay for: the
        # import of the chart's read path (it defines its record types then). Process setup,
        # not data: every request still reads the store afresh.
        from ..metadata import rollups  # noqa: F401

    def runs(self, request: Request) -> Response:
        """``GET /api/runs?status=&tag=K=V&name=GLOB&where=EXPR&sort=KEYS&column=C``: ``runs list
        --json``, each run with the values of its columns; ``where``, ``sort`` and the columns in
        the search language of ``runs list --where/--sort/--columns``."""
        _known(request, {"status", "tag", "name", "where", "sort", "column"})
        status = _one(request, "status")
        if status is not None and status not in RUN_STATES:
            raise BadRequest(f"status must be one of {', '.join(RUN_STATES)}, got {status!r}")
        columns = [c for c in request.query_params.getlist("column") if c] or None
        return json_response(rows_json(self.store.runs_table(
            columns=columns, status=status, tags=_tags(request) or None, name=_one(request, "name"),
            where=_one(request, "where"), order_by=_one(request, "sort"),
        )))

    def table(self, request: Request) -> Response:
        """``GET /api/table?where=EXPR&sort=KEYS&column=C&column=...&status=&tag=&name=``: the runs
        table (see ``table.py``): runs found by the ``runs list --where/--sort`` language, with
        param, metric and tag columns (the defaults that pick a model without ``column``)."""
        _known(request, {"where", "sort", "column", "status", "tag", "name"})
        status = _one(request, "status")
        if status is not None and status not in RUN_STATES:
            raise BadRequest(f"status must be one of {', '.join(RUN_STATES)}, got {status!r}")
        columns = [c for c in request.query_params.getlist("column") if c] or None
        return json_response(runs_table(
            self.store, where=_one(request, "where"), order_by=_one(request, "sort"), columns=columns,
            status=status, name=_one(request, "name"), tags=_tags(request) or None,
        ))

    def run(self, request: Request) -> Response:
        """``GET /api/run?name=RUN``: ``runs show --json`` with the run's checkpoints and exports,
        and each metric's summary (last, min, max, best with their steps)."""
        _known(request, {"name"})
        name = _one(request, "name", required=True)
        assert name is not None
        info = self.store.get_run(name)
        return json_response({
            "run": {**to_json(info), "metrics": self.store.metric_keys(name)},
            "summaries": list(self.store.metric_summaries(name).values()),
            "checkpoints": [checkpoint_json(ck) for ck in self.store.checkpoints(name)],
            "exports": [export_json(e) for e in self.store.exports(name)],
        })

    def keys(self, request: Request) -> Response:
        """``GET /api/keys?run=A&run=B``: the metric names any of the runs logged, sorted."""
        _known(request, {"run"})
        runs = _runs(request, required=False)
        return json_response(sorted({k for r in runs for k in self.store.metric_keys(r)}))

    def checkpoints(self, request: Request) -> Response:
        """``GET /api/checkpoints?run=A&run=B``: ``checkpoints list --json`` of each run, in turn."""
        _known(request, {"run"})
        runs = _runs(request)
        return json_response([checkpoint_json(ck) for r in runs for ck in self.store.checkpoints(r)])

    def metrics(self, request: Request) -> Response:
        """``GET /api/metrics?run=A&run=B&key=K&width=PX&start=S&stop=S&x=step|relative|wall``: one
        metric of each run, min/max-downsampled to ``width`` pixels over [start, stop] (see
        ``downsample.py``); with a time ``x``, each point's wall time too (``times``, ``t0``)."""
        _known(request, {"run", "key", "width", "start", "stop", "x"})
        x_axis = _one(request, "x") or "step"
        if x_axis not in X_AXES:
            raise BadRequest(f"x must be one of {', '.join(X_AXES)}, got {x_axis!r}")
        runs = list(request.query_params.getlist("run"))
        if not runs:
            raise BadRequest("the query parameter run is required (one or more)")
        if len(runs) > MAX_RUNS_PER_CHART:
            raise BadRequest(f"at most {MAX_RUNS_PER_CHART} runs per chart, got {len(runs)}")
        key = _one(request, "key", required=True)
        assert key is not None
        width = _int(request, "width", default=1000, low=1, high=MAX_WIDTH)
        start, stop = _int(request, "start"), _int(request, "stop")
        if start is not None and stop is not None and start > stop:
            raise BadRequest(f"start ({start}) is after stop ({stop})")
        assert width is not None
        series = []
        for name in runs:
            info = self.store.get_run(name)
            cks = [ck for ck in self.store.checkpoints(info.name)
                   if (start is None or ck.step >= start) and (stop is None or ck.step <= stop)]
            # Read cold from the metric's stored summaries: no cache to warm (see rollups.py).
            chart = self.store.metric_chart(info.name, key, width, start=start, stop=stop, at=[ck.step for ck in cks])
            xs, ys = minmax(chart.steps, chart.values, width, start=start, stop=stop)
            # On a time axis: when each point drawn (and each checkpoint) was logged, and the
            # metric's first time, the origin of "relative" (TensorBoard counts from a run's
            # first event). The points are the step axis' min/max envelope: wall time grows
            # with the step within a run, so each step bucket is a span of time whose lowest
            # and highest values are kept. Read for those points only, by primary key: a
            # million-point metric costs on a time axis what it costs by step.
            logged: dict[int, float] = {}
            timed: dict[str, Any] = {}
            if x_axis != "step":
                logged, t0 = self.store.metric_times(info.name, key, [*xs.tolist(), *(ck.step for ck in cks)])
                timed = {"times": [logged.get(s) for s in xs.tolist()], "t0": t0}
            series.append({
                **timed,
                "run": info.name,
                "status": info.status,
                "points": chart.total,
                "drawn": len(xs),
                "steps": xs.tolist(),
                "values": ys.tolist(),  # finite: minmax leaves the others out
                # Where to draw each checkpoint: the metric at its step, or the last value logged
                # before it (None before the first value).
                "checkpoints": [
                    {"ref": ck.ref, "step": ck.step, "aliases": ck.aliases, "value": value,
                     **({"time": logged.get(ck.step)} if x_axis != "step" else {})}
                    for ck, value in zip(cks, chart.at)
                ],
            })
        return plain_json_response({"key": key, "width": width, "start": start, "stop": stop, "series": series})

    def checkpoint(self, request: Request) -> Response:
        """``GET /api/checkpoint?ref=REF``: the checkpoint and its variables (``checkpoints show --json``)."""
        _known(request, {"ref"})
        ref = _one(request, "ref", required=True)
        ck = self.store.checkpoint(ref)
        return json_response({"checkpoint": checkpoint_json(ck), "variables": self.store.variables(ck)})

    def diff(self, request: Request) -> Response:
        """``GET /api/diff?ref=REF&other=REF&stats=1``: ``vars REF --diff OTHER [--stats] --json``
        (``stats=1`` reads the changed float tensors for max|Δ|, mean|Δ| and relative L2)."""
        _known(request, {"ref", "other", "stats"})
        ref = _one(request, "ref", required=True)
        other = _one(request, "other", required=True)
        stats = _int(request, "stats", default=0, low=0, high=1)
        return json_response(diff_json(self.store.diff_variables(ref, other, stats=bool(stats))))

    def exports(self, request: Request) -> Response:
        """``GET /api/exports?run=RUN``: ``exports list --json`` (every run's without ``run``)."""
        _known(request, {"run"})
        return json_response([export_json(e) for e in self.store.exports(_one(request, "run"))])

    def aliases(self, request: Request) -> Response:
        """``GET /api/aliases?name=ALIAS``: ``aliases --json``, each alias with its history."""
        _known(request, {"name"})
        return json_response(self.store.aliases(_one(request, "name")))

    def routes(self) -> list[tuple[str, Callable[[Request], Response]]]:
        return [
            ("/api/runs", self.runs),
            ("/api/table", self.table),
            ("/api/run", self.run),
            ("/api/keys", self.keys),
            ("/api/checkpoints", self.checkpoints),
            ("/api/metrics", self.metrics),
            ("/api/checkpoint", self.checkpoint),
            ("/api/diff", self.diff),
            ("/api/exports", self.exports),
            ("/api/aliases", self.aliases),
            ("/api/versions", self.aliases),  # the name before "alias" was the one word
        ]
