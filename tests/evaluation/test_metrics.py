"""Each metric on small hand-computed examples (exact values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serendip.evaluation import metrics
from serendip.evaluation.confidence import bootstrap, bootstrap_ratio


def test_novel_impression_ratio_counts_items_no_competitor_recommends_for_the_same_request() -> None:
    slates = [["a", "b", "c"], ["d", "e"]]
    competitors = [{"b", "x"}, {"a"}]  # "a" is recommended by a competitor, but for another request
    # request 1: a, c novel (2 of 3); request 2: d, e novel (2 of 2) -> 4 / 5
    assert metrics.novel_impression_ratio(slates, competitors) == pytest.approx(4 / 5)
    assert metrics.novel_impression_ratio([["a"]], [{"a"}]) == 0.0
    assert math.isnan(metrics.novel_impression_ratio([], []))


def test_relative_change() -> None:
    assert metrics.relative_change(0.6, 0.5) == pytest.approx(0.2)
    assert metrics.relative_change(0.25, 0.5) == pytest.approx(-0.5)
    assert math.isnan(metrics.relative_change(1.0, 0.0))


def test_positive_feedback_ratio_and_mean_satisfaction_are_per_impression() -> None:
    assert metrics.positive_feedback_ratio([[True, False, True], [False]]) == pytest.approx(2 / 4)
    assert metrics.mean_satisfaction([[0.2, 0.4, 0.9], [0.5]]) == pytest.approx(2.0 / 4)


def test_ge_serendipity_needs_unexpected_and_useful_and_averages_lists() -> None:
    slates = [["a", "b", "c", "d"], ["e", "f"]]
    primitive = [{"a", "b"}, {"z"}]
    useful = [[True, True, True, False], [False, True]]
    # list 1: UNEXP = {c, d}, USEFUL = {a, b, c} -> {c}: 1/4; list 2: UNEXP = {e, f}, USEFUL = {f}: 1/2
    assert metrics.ge_serendipity(slates, primitive, useful) == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert metrics.ge_serendipity([["a"]], [{"a"}], [[True]]) == 0.0


def test_cluster_unexpectedness_is_the_share_outside_the_history_clusters() -> None:
    slate_clusters = [["c1", "c2", "c3", "c3"], ["c1", "c1"]]
    history_clusters = [{"c1"}, {"c1", "c9"}]
    # list 1: c2, c3, c3 unexpected = 3/4; list 2: 0
    assert metrics.cluster_unexpectedness(slate_clusters, history_clusters) == pytest.approx(3 / 8)


def test_catalog_coverage_counts_distinct_items() -> None:
    assert metrics.catalog_coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)


def test_gini_index_of_exposures_over_the_catalogue() -> None:
    catalog = ["a", "b", "c", "d"]
    assert metrics.gini_index([["a", "b"], ["c", "d"]], catalog) == pytest.approx(0.0)
    # all 4 impressions on one item: x = (0, 0, 0, 4): (2·4 − 4 − 1)·4 / (4·4) = 12 / 16
    assert metrics.gini_index([["a"], ["a"], ["a"], ["a"]], catalog) == pytest.approx(0.75)
    # x sorted = (0, 1, 1, 2): (−3·0 − 1·1 + 1·1 + 3·2) / (4·4) = 6 / 16
    assert metrics.gini_index([["a", "b"], ["a", "c"]], catalog) == pytest.approx(6 / 16)


def test_recall_and_ndcg_at_k_with_one_held_out_target() -> None:
    slates = [["x", "t1", "y"], ["t2", "x"], ["x", "y", "z"], ["a", "b", "t4"]]
    targets = ["t1", "t2", "t3", "t4"]
    assert metrics.recall_at_k(slates, targets, k=3) == pytest.approx(3 / 4)
    assert metrics.recall_at_k(slates, targets, k=2) == pytest.approx(2 / 4)
    expected = (1 / math.log2(3) + 1 / math.log2(2) + 0 + 1 / math.log2(4)) / 4
    assert metrics.ndcg_at_k(slates, targets, k=3) == pytest.approx(expected)
    assert metrics.ndcg_at_k(slates, targets, k=2) == pytest.approx((1 / math.log2(3) + 1) / 4)


def test_bootstrap_is_deterministic_and_covers_the_estimate() -> None:
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])

    def mean(indices: np.ndarray) -> float:
        return float(values[indices].mean())

    first = bootstrap(mean, len(values), 200, seed=3)
    assert first == bootstrap(mean, len(values), 200, seed=3)
    assert first.value == pytest.approx(5 / 8)
    assert first.low < first.value < first.high
    change = bootstrap_ratio(mean, len(values), lambda i: 0.5, 4, 200, seed=3)
    assert change.value == pytest.approx(0.25)
    assert change.low < 0.25 < change.high
