"""Baselines are exact, deterministic functions of the training labels and the candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.models.mllm.evaluation import plot_curves, popularity_baseline, random_baseline

CANDIDATES = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"], "x": ["y", "z", "w"]}


def test_popularity_ranks_candidates_by_training_label_frequency() -> None:
    train_labels = ["c", "c", "b", "y"]
    heldout = [("a", "c"), ("a", "b"), ("b", "c"), ("c", "a"), ("x", "z")]
    result = popularity_baseline(train_labels, heldout, CANDIDATES, ranks=(1, 2))
    # a -> [c, b]: hit, miss@1; b -> [c, a]: hit; c -> [b, a] (a and b tie on... b has 1): miss@1, hit@2; x -> [y, w, z]
    assert result["recall@1"] == pytest.approx(2 / 5)
    assert result["recall@2"] == pytest.approx(4 / 5)
    assert result["recall"] == result["recall@1"]


def test_random_baseline_is_the_exact_expectation() -> None:
    heldout = [("a", "c"), ("x", "z"), ("x", "q")]  # the last label is not a candidate: never hit
    result = random_baseline(heldout, CANDIDATES, ranks=(1, 2))
    assert result["recall@1"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert result["recall@2"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_curves_are_written(tmp_path: Path) -> None:
    records = [{"step": 10, "recall": 0.2}, {"step": 20, "recall": 0.5}]
    plot_curves({"run": records}, "recall", tmp_path / "curve.png", "recall", {"popularity": 0.3})
    assert (tmp_path / "curve.png").stat().st_size > 1000
