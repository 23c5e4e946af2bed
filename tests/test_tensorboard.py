"""``ckptstore tensorboard``: runs' metrics as event files, read back with TensorBoard's own
EventAccumulator, every value compared (as float32, what scalar summaries hold)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import fails, ok

pytest.importorskip("tensorboard", reason="TensorBoard export needs the tensorboard package")


def read_back(run_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


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
    from ckptstore.errors import ConflictError, UnknownRunError
    from ckptstore.tensorboard import write_event_files

    fill(sqlite_store)
    write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb", keys=["lr"])
    assert sorted(read_back(tmp_path / "tb" / "tb-a")) == ["lr"]
    with pytest.raises(ConflictError, match="already holds TensorBoard event files"):
        write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb")
    write_event_files(sqlite_store, ["tb-a"], tmp_path / "tb", force=True)
    assert len(list((tmp_path / "tb" / "tb-a").iterdir())) == 1
    assert sorted(read_back(tmp_path / "tb" / "tb-a")) == ["loss", "lr"]
    with pytest.raises(UnknownRunError):
        write_event_files(sqlite_store, ["tb-a", "nope"], tmp_path / "tb2")
    assert not (tmp_path / "tb2").exists()  # refused before writing anything


@pytest.mark.slow  # two CLI processes that import TensorBoard (and TensorFlow through it)
def test_the_tensorboard_command(sqlite_store, tmp_path: Path):
    fill(sqlite_store)
    store = tmp_path / "store"
    out = ok("tensorboard", "tb-a", "tb b (odd name)", "--logdir", str(tmp_path / "tb"), store=store)
    assert [Path(line).parent.name for line in out.splitlines()] == ["tb-a", "tb b (odd name)"]
    same(read_back(tmp_path / "tb" / "tb-a")["loss"], expected(sqlite_store, "tb-a")["loss"])
    assert "--force" in fails("tensorboard", "tb-a", "--logdir", str(tmp_path / "tb"), store=store)
    assert "no run named 'nope'" in fails("tensorboard", "nope", "--logdir", str(tmp_path / "x"), store=store)
