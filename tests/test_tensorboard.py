"""``ckptstore tensorboard``: runs' metrics as event files, read back with TensorBoard's own
EventAccumulator, every value compared (as float32, what scalar summaries hold); params as
HParams, read by TensorBoard's own HParams plugin over its data provider; checkpoint markers;
the files' framing byte for byte as TensorBoard's writer makes it, written without TensorFlow.
Following running runs: tests/test_tensorboard_follow.py."""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.cli import IMPORTS_CHECK, bad_usage, cli, fails, imported, ok
from tests.helpers.tensorboard import hparams_view, markers, proto_value, read_back

pytest.importorskip("tensorboard", reason="TensorBoard export needs the tensorboard package")


def fill(store) -> None:
    with store.start_run("tb-a") as run:
        for step in range(0, 500, 3):
            run.log(step, loss=1.0 / (step + 1), lr=1e-3 * 0.99**step)
        run.log(600, loss=float("nan"), lr=123456.789)
    with store.start_run("tb b (odd name)") as run:
        for step in range(10):
            run.log(step * 1000, **{"val/acc": step / 10, "loss": -step * 1e-20})


def expected(store, run: str) -> dict[str, list[tuple[int, float, float]]]:
    out: dict[str, list[tuple[int, float, float]]] = {}
    for row in store.steps(run):
        for key, value in row.metrics.items():
            out.setdefault(key, []).append((row.step, value, row.wall_time))
    return out


def same(got: list[tuple[int, float, float]], want: list[tuple[int, float, float]]) -> None:
    assert [s for s, _, _ in got] == [s for s, _, _ in want]
    for (_, g, gw), (_, w, ww) in zip(got, want):
        if math.isnan(w):
            assert math.isnan(g)
        else:
            assert g == float(np.float32(w))
        assert gw == pytest.approx(ww, abs=1e-6)


def test_every_value_reads_back_with_tensorboard(sqlite_store, tmp_path: Path):
    from ckptstore.tensorboard import write_event_files

    fill(sqlite_store)
    written = write_event_files(sqlite_store, ["tb-a", "tb b (odd name)"], tmp_path / "tb")
    assert [p.parent.name for p in written] == ["tb-a", "tb b (odd name)"]
    for run in ("tb-a", "tb b (odd name)"):
        got, want = read_back(tmp_path / "tb" / run), expected(sqlite_store, run)
        assert sorted(got) == sorted(want)
        for key in want:
            same(got[key], want[key])
    assert len(read_back(tmp_path / "tb" / "tb-a")["loss"]) == 168


def test_only_chosen_metrics_and_no_second_copy_without_force(sqlite_store, tmp_path: Path):
    from ckptstore.errors import CkptstoreError, ConflictError, UnknownRunError
    from ckptstore.tensorboard import write_event_files

    fill(sqlite_store)
    write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb", keys=["lr"])
    assert sorted(read_back(tmp_path / "tb" / "tb-a")) == ["lr"]
    with pytest.raises(ConflictError, match=r"already holds TensorBoard event files \(from an earlier export\); force=True replaces them$"):
        write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb")
    write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb", force=True)
    assert len(list((tmp_path / "tb" / "tb-a").iterdir())) == 1
    assert sorted(read_back(tmp_path / "tb" / "tb-a")) == ["loss", "lr"]
    with pytest.raises(UnknownRunError):
        write_event_files(sqlite_store, ["tb-a", "nope"], tmp_path / "tb2")
    assert not (tmp_path / "tb2").exists()  # refused before writing anything
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CkptstoreError, match="cannot write TensorBoard files in .*a-file"):
        write_event_files(sqlite_store, ["tb-a"], tmp_path / "a-file")


@pytest.mark.slow  # two CLI processes (TensorBoard, no TensorFlow: about 1 s each)
def test_the_tensorboard_command(sqlite_store, tmp_path: Path):
    fill(sqlite_store)
    store = tmp_path / "store"
    out = ok("tensorboard", "tb-a", "tb b (odd name)", "--logdir", str(tmp_path / "tb"), store=store)
    assert [Path(line).parent.name for line in out.splitlines()] == ["tb-a", "tb b (odd name)"]
    same(read_back(tmp_path / "tb" / "tb-a")["loss"], expected(sqlite_store, "tb-a")["loss"])
    line = fails("tensorboard", "tb-a", "--logdir", str(tmp_path / "tb"), store=store)
    assert line.endswith("; --force replaces them") and "force=True" not in line, line  # the CLI's words
    assert "no run named 'nope'" in fails("tensorboard", "nope", "--logdir", str(tmp_path / "x"), store=store)
    assert "only with --follow" in bad_usage("tensorboard", "tb-a", "--logdir", str(tmp_path / "y"), "--interval", "1",
                                             store=store)
    assert "above 0" in bad_usage("tensorboard", "tb-a", "--logdir", str(tmp_path / "y"), "--follow", "--interval", "0",
                                  store=store)
    assert not (tmp_path / "y").exists()
    r = cli("tensorboard", "tb-*", "--logdir", str(tmp_path / "z"), "--follow", "--interval", "0.1", store=store)
    assert r.returncode == 0, r.stderr
    assert [Path(line).parent.name for line in r.stdout.splitlines()] == ["tb-a"]  # ended: returns at once
    assert r.stderr.splitlines()[-1] == "every run ended"


def fill_grid(store) -> None:
    """Three runs of a small grid: finished, failed, still running (left open)."""
    for name, lr, width in [("grid-a", 0.1, 32), ("grid-b", 0.01, 64)]:
        with store.start_run(name, params={"lr": lr, "width": width, "opt": {"name": "adam", "betas": [0.9, 0.999]},
                                           "augment": width > 40}, tags={"team": "vision"}) as run:
            for step in range(5):
                run.log(step, loss=1 / (step + 1) * lr, val_accuracy=step / 10)
    with pytest.raises(RuntimeError), store.start_run("grid-c", params={"lr": 0.5, "width": 16, "opt": "sgd"}) as run:
        run.log(0, loss=9.0)
        raise RuntimeError("diverged")
    running = store.start_run("grid-d", params={"lr": 0.001, "width": 128})
    running.log(0, loss=3.0, val_accuracy=0.1)
    running.flush()


def test_params_show_in_tensorboards_hparams_table(store, tmp_path: Path):  # SQLite and PostgreSQL
    from tensorboard.plugins.hparams import api_pb2

    from ckptstore.tensorboard import write_event_files

    fill_grid(store)
    write_event_files(store, ["grid-a", "grid-b", "grid-c", "grid-d"], tmp_path / "tb")
    experiment, groups = hparams_view(tmp_path / "tb")
    # The experiment config at the logdir's root: domains from the values seen, as TensorBoard
    # infers them (numbers an interval, text and booleans discrete; mixed types become text).
    infos = {h.name: h for h in experiment.hparam_infos}
    assert sorted(infos) == ["augment", "lr", "opt", "opt.betas", "opt.name", "tags.team", "width"]
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (0.001, 0.5)
    assert (infos["width"].domain_interval.min_value, infos["width"].domain_interval.max_value) == (16, 128)
    assert [proto_value(v) for v in infos["augment"].domain_discrete.values] == [False, True]
    assert [proto_value(v) for v in infos["opt.name"].domain_discrete.values] == ["adam"]
    assert [proto_value(v) for v in infos["tags.team"].domain_discrete.values] == ["vision"]
    assert sorted(m.name.tag for m in experiment.metric_infos) == ["loss", "val_accuracy"]
    # Those that differ between the runs come first in the table (it shows 5 at first).
    assert sorted(h.name for h in experiment.hparam_infos if h.differs) == ["augment", "lr", "width"]
    # One row per run, named after it, with its params, last metric values and status.
    assert sorted(groups) == ["grid-a", "grid-b", "grid-c", "grid-d"]
    b = groups["grid-b"]
    assert {k: proto_value(v) for k, v in b.hparams.items()} == {
        "lr": 0.01, "width": 64, "augment": True, "opt.name": "adam", "opt.betas": "[0.9, 0.999]", "tags.team": "vision"}
    assert {m.name.tag: (m.training_step, m.value) for m in b.metric_values} == {
        "loss": (4, pytest.approx(0.002)), "val_accuracy": (4, pytest.approx(0.4))}
    assert proto_value(groups["grid-c"].hparams["opt"]) == "sgd"
    status = {name: g.sessions[0].status for name, g in groups.items()}
    assert status == {"grid-a": api_pb2.STATUS_SUCCESS, "grid-b": api_pb2.STATUS_SUCCESS,
                      "grid-c": api_pb2.STATUS_FAILURE, "grid-d": api_pb2.STATUS_UNKNOWN}  # still running: no end yet
    start = store.get_run("grid-a").created_at.timestamp()
    assert groups["grid-a"].sessions[0].start_time_secs == pytest.approx(start)


def test_the_experiment_config_covers_every_run_exported_there(sqlite_store, tmp_path: Path):
    from ckptstore.tensorboard import EVENT_FILE_GLOB, write_event_files

    fill_grid(sqlite_store)
    write_event_files(sqlite_store, ["grid-a"], tmp_path / "tb")
    write_event_files(sqlite_store, ["grid-c"], tmp_path / "tb")
    (tmp_path / "tb" / "not-a-run").mkdir()
    (tmp_path / "tb" / "not-a-run" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    write_event_files(sqlite_store, ["grid-b"], tmp_path / "tb")
    assert len(list((tmp_path / "tb").glob(EVENT_FILE_GLOB))) == 1  # rewritten, not added to
    experiment, groups = hparams_view(tmp_path / "tb")
    lr = next(h for h in experiment.hparam_infos if h.name == "lr")
    assert (lr.domain_interval.min_value, lr.domain_interval.max_value) == (0.01, 0.5)
    assert sorted(groups) == ["grid-a", "grid-b", "grid-c"]


def test_event_files_are_framed_as_tensorboards_writer_frames_them(sqlite_store, tmp_path: Path):
    """Byte for byte: every record of our file, re-framed by TensorBoard's own RecordWriter
    (masked CRC32C of the length and of the data), gives the same bytes."""
    import io

    from tensorboard.summary.writer.record_writer import RecordWriter

    from ckptstore.tensorboard import write_event_files

    fill(sqlite_store)
    [path] = write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb")
    data, records, at = path.read_bytes(), [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        records.append(data[at + 12:at + 12 + length])
        at += 12 + length + 4
    framed = io.BytesIO()
    writer = RecordWriter(framed)
    for record in records:
        writer.write(record)
    assert framed.getvalue() == data
    assert len(records) == 1 + 1 + 168 + 1  # version, session start, steps, session end
    assert path.name.startswith("events.out.tfevents.")


@pytest.mark.slow  # TensorFlow: real checkpoints and an export
def test_checkpoints_and_aliases_are_marked_at_their_steps(sqlite_store, tiny_model, seed_session, tmp_path: Path):
    from ckptstore.tensorboard import write_event_files

    run = sqlite_store.start_run("m")
    for step in range(6):
        run.log(step, loss=1.0 / (step + 1))
        if step in (2, 4):
            run.save(tiny_model(float(step)), step)
    run.save(tiny_model(9.0), 7)  # a checkpoint at a step without metrics
    export = run.freeze(seed_session, ["op_to_store"], step=4)
    run.finish()
    sqlite_store.set_alias("prod", "m@4")
    sqlite_store.set_alias("candidate", "m@4")
    sqlite_store.set_alias("served", export.ref)
    write_event_files(sqlite_store, ["m"], tmp_path / "tb")
    assert markers(tmp_path / "tb" / "m") == {
        2: "checkpoint `m@2`, not pinned",
        4: "checkpoint `m@4`, pinned by alias `candidate`, `prod`\n\n"
           f"export `{export.ref}` (tf1-graphdef) of `m@4`, alias `served`",
        7: "checkpoint `m@7`, not pinned",
    }
    assert len(read_back(tmp_path / "tb" / "m")["loss"]) == 6


def test_exporting_does_not_import_tensorflow(sqlite_store, tmp_path: Path):
    fill(sqlite_store)
    sqlite_store.close()
    r = cli("tensorboard", "tb-a", "--logdir", str(tmp_path / "tb"), store=tmp_path / "store", code=IMPORTS_CHECK)
    assert r.returncode == 0, r.stderr
    assert "tensorflow" not in imported(r.stderr)
    assert len(read_back(tmp_path / "tb" / "tb-a")["loss"]) == 168


#: TensorBoard itself, in a child process with a deadline of its own (``children.python``).
TENSORBOARD = "import sys; from tensorboard import main; sys.argv = ['tensorboard', *sys.argv[1:]]; main.run_main()"


@pytest.mark.slow  # TensorBoard's server (it imports TensorFlow) and its Rust data server, reading our files
def test_tensorboards_own_server_shows_the_runs(sqlite_store, tmp_path: Path, children):
    import json
    import time
    import urllib.request

    from ckptstore.tensorboard import write_event_files
    from tests.helpers.postgres import free_port

    fill_grid(sqlite_store)
    write_event_files(sqlite_store, ["grid-a", "grid-c"], tmp_path / "tb")
    port = free_port()
    children.python(TENSORBOARD, "--logdir", str(tmp_path / "tb"), "--host", "127.0.0.1", "--port", str(port),
                    "--load_fast=true", deadline=180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ask(path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    every_status = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    deadline, groups = time.monotonic() + 150, []
    while len(groups) < 2 or any(not g["metricValues"] for g in groups):  # the data server loads in the background
        assert time.monotonic() < deadline, "TensorBoard did not show the runs"
        time.sleep(0.5)
        try:
            groups = ask("/data/plugin/hparams/session_groups", {
                "startIndex": 0, "sliceSize": 10, "allowedStatuses": every_status, "includeMetrics": True,
            })["sessionGroups"]
        except OSError:  # not listening yet
            continue
    by_name = {g["name"]: g for g in groups}
    assert by_name["grid-a"]["hparams"] == {"lr": 0.1, "width": 32.0, "augment": False, "opt.name": "adam",
                                            "opt.betas": "[0.9, 0.999]", "tags.team": "vision"}
    assert by_name["grid-c"]["sessions"][0]["status"] == "STATUS_FAILURE"
    assert by_name["grid-a"]["sessions"][0]["status"] == "STATUS_SUCCESS"
    experiment = ask("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert sorted(m["name"]["tag"] for m in experiment["metricInfos"]) == ["loss", "val_accuracy"]
    loss = ask("/data/plugin/scalars/scalars?run=grid-a&tag=loss")
    assert [step for _, step, _ in loss] == [0, 1, 2, 3, 4]
