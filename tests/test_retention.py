"""Retention as a pure function: (checkpoints, rule, metrics) -> which to delete. No TF, no database."""

from __future__ import annotations

import math

import pytest

from ckptstore.retention import Candidate, KeepBest, Plan, Retention, plan

HOUR = 3600.0


def ckpts(*steps: int, every: float = 60.0, pinned: tuple[int, ...] = (), kept: tuple[int, ...] = ()) -> list[Candidate]:
    """Checkpoints at ``steps`` (id = step), ``every`` seconds apart."""
    return [
        Candidate(id=s, step=s, created=1_000_000.0 + i * every, pinned=s in pinned, kept=s in kept)
        for i, s in enumerate(steps)
    ]


def test_no_rule_deletes_nothing():
    assert plan(ckpts(1, 2, 3, 4), Retention()) == Plan()
    assert not Retention().active


def test_keep_every_n_hours_alone_deletes_nothing():
    # As tf.train.Saver with max_to_keep=None: everything is kept anyway.
    assert plan(ckpts(1, 2, 3, every=10 * HOUR), Retention(keep_every_n_hours=1)) == Plan()


def test_no_checkpoints_is_an_empty_plan():
    assert plan([], Retention(max_to_keep=1)) == Plan()


def test_max_to_keep_keeps_the_newest_steps():
    p = plan(ckpts(100, 200, 300, 400, 500), Retention(max_to_keep=2))
    assert p.delete == [100, 200, 300]
    assert p.newly_kept == []


def test_max_to_keep_orders_by_step_not_by_input_order():
    shuffled = [c for c in reversed(ckpts(1, 2, 3, 4))]
    assert plan(shuffled, Retention(max_to_keep=1)).delete == [1, 2, 3]


def test_fewer_checkpoints_than_max_to_keep_deletes_nothing():
    assert plan(ckpts(1, 2), Retention(max_to_keep=5)).delete == []


def test_pinned_checkpoints_survive_any_rule():
    p = plan(ckpts(1, 2, 3, 4, pinned=(1, 3)), Retention(max_to_keep=1))
    assert p.delete == [2]


def test_already_kept_checkpoints_survive():
    p = plan(ckpts(1, 2, 3, 4, kept=(2,)), Retention(max_to_keep=1))
    assert p.delete == [1, 3]


def test_keep_best_keeps_the_k_lowest_and_the_newest():
    metric = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.2, 5: 0.7}
    p = plan(ckpts(1, 2, 3, 4, 5), Retention(keep_best=KeepBest("loss", k=2)), metric)
    assert p.delete == [1, 3]  # kept: 2 and 4 (best), 5 (newest)


def test_keep_best_mode_max_keeps_the_highest():
    metric = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.2, 5: 0.7}
    p = plan(ckpts(1, 2, 3, 4, 5), Retention(keep_best=KeepBest("acc", k=1, mode="max")), metric)
    assert p.delete == [2, 3, 4]


def test_keep_best_ignores_missing_and_nan_values():
    metric = {1: math.nan, 3: 0.5}
    p = plan(ckpts(1, 2, 3, 4), Retention(keep_best=KeepBest("loss", k=2)), metric)
    assert p.delete == [1, 2]  # only 3 has a usable value; 4 is the newest


def test_keep_best_ties_prefer_the_newer_step():
    metric = {1: 0.5, 2: 0.5, 3: 0.5, 4: 9.0}
    p = plan(ckpts(1, 2, 3, 4), Retention(keep_best=KeepBest("loss", k=1)), metric)
    assert p.delete == [1, 2]


def test_keep_best_without_metrics_keeps_only_the_newest():
    assert plan(ckpts(1, 2, 3), Retention(keep_best=KeepBest("loss", k=2))).delete == [1, 2]


def test_max_to_keep_and_keep_best_are_a_union():
    metric = {1: 0.01, 2: 0.5, 3: 0.4, 4: 0.3, 5: 0.2}
    p = plan(ckpts(1, 2, 3, 4, 5), Retention(max_to_keep=2, keep_best=KeepBest("loss")), metric)
    assert p.delete == [2, 3]


def test_keep_every_n_hours_marks_one_checkpoint_per_interval_as_kept():
    # One checkpoint every 30 minutes for 4 hours; keep one per 1.5 hours, plus the last 2.
    steps = list(range(0, 9))
    p = plan(ckpts(*steps, every=0.5 * HOUR), Retention(max_to_keep=2, keep_every_n_hours=1.5))
    assert p.newly_kept == [3, 6]
    assert p.delete == [0, 1, 2, 4, 5]


def test_keep_every_n_hours_counts_from_the_last_kept_checkpoint():
    cs = ckpts(0, 1, 2, 3, 4, 5, every=0.5 * HOUR, kept=(2,))
    p = plan(cs, Retention(max_to_keep=1, keep_every_n_hours=1))
    assert p.newly_kept == [4]
    assert p.delete == [0, 1, 3]


def test_the_newest_checkpoint_is_always_kept_so_training_can_resume():
    metric = {1: 0.1, 2: 0.2, 3: 99.0}
    p = plan(ckpts(1, 2, 3), Retention(keep_best=KeepBest("loss", k=1)), metric)
    assert 3 not in p.delete


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"max_to_keep": 0}, "max_to_keep.*0"),
        ({"max_to_keep": -3}, "max_to_keep.*-3"),
        ({"max_to_keep": 2.5}, "max_to_keep.*2.5"),
        ({"max_to_keep": True}, "max_to_keep.*True"),
        ({"keep_every_n_hours": 0}, "keep_every_n_hours.*0"),
        ({"keep_every_n_hours": -1.0}, "keep_every_n_hours"),
        ({"keep_every_n_hours": "2"}, "keep_every_n_hours.*'2'"),
        ({"keep_every_n_hours": True}, "keep_every_n_hours.*True"),
    ],
)
def test_bad_retention_options_are_refused_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Retention(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"metric": ""}, "metric"),
        ({"metric": None}, "metric"),
        ({"metric": "loss", "k": 0}, "k.*0"),
        ({"metric": "loss", "k": True}, "k.*True"),
        ({"metric": "loss", "mode": "lowest"}, "mode.*lowest"),
    ],
)
def test_bad_keep_best_options_are_refused_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KeepBest(**kwargs)


def test_retention_round_trips_through_json():
    r = Retention(max_to_keep=3, keep_every_n_hours=2.0, keep_best=KeepBest("acc", k=2, mode="max"))
    assert Retention.from_json(r.to_json()) == r
    assert Retention.from_json(None) == Retention()
    assert Retention.from_json({}) == Retention()
    import json

    assert json.loads(json.dumps(r.to_json())) == r.to_json()


def test_keep_best_may_be_given_as_a_mapping():
    r = Retention(keep_best={"metric": "loss", "k": 2})  # type: ignore[arg-type]
    assert r.keep_best == KeepBest("loss", k=2)
    assert r.active


def test_keep_every_n_hours_applied_after_every_save_keeps_one_per_interval():
    # As run.save does: retention after each save, the run started with the first checkpoint.
    # The anchor used to be the oldest checkpoint still there, i.e. the one leaving the
    # max_to_keep window, measured against itself: nothing was ever kept.
    policy = Retention(max_to_keep=2, keep_every_n_hours=1.5)
    start = 1_000_000.0
    alive: list[Candidate] = []
    for step in range(21):
        alive.append(Candidate(id=step, step=step, created=start + step * 0.5 * HOUR))
        p = plan(alive, policy, since=start)
        alive = [
            Candidate(c.id, c.step, c.created, kept=c.kept or c.id in p.newly_kept, pinned=c.pinned)
            for c in alive
            if c.id not in p.delete
        ]
    assert [c.step for c in alive if c.kept] == [3, 6, 9, 12, 15, 18]
    assert [c.step for c in alive] == [3, 6, 9, 12, 15, 18, 19, 20]


def test_keep_every_n_hours_counts_from_the_run_start():
    # The run started 2 hours before its first checkpoint: that one is already due.
    cs = ckpts(0, 1, 2, every=0.25 * HOUR)
    p = plan(cs, Retention(max_to_keep=1, keep_every_n_hours=1), since=cs[0].created - 2 * HOUR)
    assert p.newly_kept == [0]
    assert p.delete == [1]
