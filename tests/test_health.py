"""Warnings about an objective's estimates: when they start, what they say, said once."""

from __future__ import annotations

import math

from bvae_tui.engine.runs.health import EstimateWatch, estimate_warnings


def _kinds(iters, **series):
    return [(w.kind, w.since) for w in estimate_warnings(iters, series, hold=300, min_rows=3)]


def test_a_negative_tc_estimate_is_reported_once_it_has_held_long_enough():
    iters = [100, 200, 300, 400, 500]
    assert _kinds(iters, tc=[0.5, -0.1, -0.2, -0.1, -0.3]) == [("negative-tc", 100)]
    assert _kinds(iters, tc=[0.5, 0.4, 0.1, -0.1, -0.3]) == []  # 200 iterations: not yet...
    assert _kinds([*iters, 600], tc=[0.5, 0.4, 0.1, -0.1, -0.3, -0.1]) == [
        ("negative-tc", 300)]  # ...300 now
    assert _kinds(iters, tc=[-1.0, -1.0, 0.1, -1.0, -1.0]) == []  # interrupted: starts again
    assert _kinds(iters, tc=[-1.0] * 5) == [("negative-tc", 0)]  # from the start
    assert _kinds([1000, 2000], tc=[-1.0, -1.0]) == []  # too few rows, however long
    assert _kinds(iters, tc=[-1.0, -1.0, None, -1.0, -1.0]) == []  # not logged is not bad
    assert _kinds(iters, tc=[-1.0, -1.0, -1.0, -1.0, math.nan]) == []
    assert _kinds(iters, tc=[-1.0] * 4) == []  # a series that does not fit the rows


def test_a_discriminator_at_chance_or_always_right():
    iters = [100, 200, 300, 400]
    assert _kinds(iters, disc_acc=[0.9, 0.9, 0.51, 0.5]) == []  # two rows, 200 iterations
    assert _kinds(iters, disc_acc=[0.5, 0.51, 0.48, 0.5]) == [("disc-chance", 0)]
    assert _kinds(iters, disc_acc=[0.995, 1.0, 0.99, 1.0]) == [("disc-saturated", 0)]
    assert _kinds(iters, disc_acc=[0.7, 0.8, 0.75, 0.9]) == []
    both = estimate_warnings(iters, {"tc": [-1.0] * 4, "disc_acc": [1.0] * 4}, hold=300)
    assert [w.kind for w in both] == ["negative-tc", "disc-saturated"]
    assert "400 iterations" in both[0].message and "now -1 nats" in both[0].message
    assert "100%" in both[1].message and "--disc-lr" in both[1].message
    assert estimate_warnings([], {}) == [] and estimate_warnings(iters, {}) == []


def test_the_watch_says_each_warning_once_per_episode(monkeypatch):
    import bvae_tui.engine.runs.health as health

    monkeypatch.setattr(health, "HOLD_ITERS", 20)
    watch = EstimateWatch()
    said = [watch.add(i * 10, {"tc": tc, "disc_acc": None})
            for i, tc in enumerate([-1, -1, -1, -1, -1, 1, -1, -1, -1], start=1)]
    assert [len(s) for s in said] == [0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert said[2][0].startswith("TC estimate below zero for 30 iterations")
    small = EstimateWatch(keep=4)
    for i in range(10):
        small.add(i, {"tc": 1.0})
    assert small.iters == [6.0, 7.0, 8.0, 9.0] and len(small.series["tc"]) == 4
