"""Replay metrics on a hand-made log (exact values), the production-pool rule, schema checks, and buckets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.evaluation.buckets import VisualInterestClassifier, assign_buckets, bucket_gains, frame_features
from serendip.evaluation.replay import ArmSpec, EvaluationLogs, LogsError, replay_metrics

ARMS = [
    ArmSpec("C", "control", "control"),
    ArmSpec("E", "exploration", "explore"),
    ArmSpec("T", "treatment", "mllm"),
    ArmSpec("T2", "treatment", "text-only"),
]
# request -> every arm's slate; request r1 is served by C, r2 by E, r3 by T, r4 by T2
NOMINATED = {
    "r1": {"C": ["x", "p"], "E": ["p", "q"], "T": ["s", "t"], "T2": ["s", "u"]},
    "r2": {"C": ["m", "n"], "E": ["q", "y"], "T": ["q", "v"], "T2": ["w", "v"]},
    "r3": {"C": ["m", "c2"], "E": ["c2", "d"], "T": ["z", "e"], "T2": ["z", "e"]},
    "r4": {"C": ["m", "n"], "E": ["n", "o"], "T": ["f", "g"], "T2": ["f", "h"]},
}
SEGMENT = {"r1": "C", "r2": "E", "r3": "T", "r4": "T2"}
POSITIVE = {"r1": [True, False], "r2": [True, True], "r3": [False, True], "r4": [True, False]}
SATISFACTION = {"r1": [0.8, 0.2], "r2": [0.6, 0.7], "r3": [0.3, 0.9], "r4": [0.5, 0.1]}
HELDOUT = {"r1": "x", "r2": "y", "r3": "z", "r4": "q"}
CATALOG = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["c2"]


def _logs(with_nominations: bool = True) -> EvaluationLogs:
    requests = pd.DataFrame(
        [
            {
                "request_id": r,
                "user_id": f"u{r}",
                "arm": SEGMENT[r],
                "context_item_id": "k",
                "history": ["k"],
                "heldout_item_id": HELDOUT[r],
            }
            for r in NOMINATED
        ]
    )
    impressions = pd.DataFrame(
        [
            {
                "request_id": r,
                "arm": SEGMENT[r],
                "item_id": item,
                "position": i,
                "positive": POSITIVE[r][i],
                "satisfaction": SATISFACTION[r][i],
            }
            for r, slates in NOMINATED.items()
            for i, item in enumerate(slates[SEGMENT[r]])
        ]
    )
    nominations = pd.DataFrame(
        [
            {"request_id": r, "arm": arm, "item_id": item, "position": i}
            for r, slates in NOMINATED.items()
            for arm, slate in slates.items()
            for i, item in enumerate(slate)
        ]
    )
    return EvaluationLogs(ARMS, requests, impressions, nominations if with_nominations else None)


def _values(result: dict, metric: str) -> dict[str, float]:
    return {arm: result["metrics"][arm][metric]["value"] for arm in SEGMENT.values()}


def test_replay_metrics_on_a_hand_computed_log() -> None:
    result = replay_metrics(_logs(), catalog=CATALOG, k=2, resamples=20)
    # C vs E + T: x novel, p not; E vs C + T: y novel, q not; T vs C + E and T2 vs C + E: all novel
    assert _values(result, "novel_impression_ratio") == {"C": 0.5, "E": 0.5, "T": 1.0, "T2": 1.0}
    assert _values(result, "positive_feedback_ratio") == {"C": 0.5, "E": 1.0, "T": 0.5, "T2": 0.5}
    assert _values(result, "mean_satisfaction") == pytest.approx({"C": 0.5, "E": 0.65, "T": 0.6, "T2": 0.3})
    # unexpected w.r.t. C's slate of the same request AND positive
    assert _values(result, "serendipity") == {"C": 0.0, "E": 1.0, "T": 0.5, "T2": 0.5}
    assert _values(result, "recall@2") == {"C": 1.0, "E": 1.0, "T": 1.0, "T2": 0.0}
    assert _values(result, "ndcg@2") == pytest.approx({"C": 1.0, "E": 1 / math.log2(3), "T": 1.0, "T2": 0.0})
    assert _values(result, "coverage") == pytest.approx({arm: 2 / 27 for arm in SEGMENT.values()})
    assert _values(result, "engaged_users") == {"C": 1.0, "E": 1.0, "T": 1.0, "T2": 1.0}  # ≥ ⌈2/2⌉ positive
    assert _values(result, "engaged_pairs_per_user") == {"C": 1.0, "E": 2.0, "T": 1.0, "T2": 1.0}
    assert _values(result, "cluster_unexpectedness")["C"] is None  # no tree given: NaN, stored as null
    assert "C" not in result["relative_to_control"]
    assert result["relative_to_control"]["E"]["positive_feedback_ratio"]["value"] == pytest.approx(1.0)
    assert result["relative_to_control"]["T"]["novel_impression_ratio"]["value"] == pytest.approx(1.0)
    assert [arm["impressions"] for arm in result["arms"]] == [2, 2, 2, 2]


def test_without_nominations_novelty_is_judged_against_the_catalogue_of_other_arms() -> None:
    result = replay_metrics(_logs(with_nominations=False), k=2, resamples=0)
    # T vs items shown by C and E anywhere {x, p, q, y}: z, e novel; E vs C and T {x, p, z, e}: q, y novel
    assert _values(result, "novel_impression_ratio") == {"C": 1.0, "E": 1.0, "T": 1.0, "T2": 1.0}
    assert result["metrics"]["C"]["novel_impression_ratio"]["low"] is None  # no resamples, no interval


def test_the_production_pool_excludes_alternative_treatments() -> None:
    logs = _logs()
    assert logs.competitors(ARMS[0]) == ["E", "T"]
    assert logs.competitors(ARMS[1]) == ["C", "T"]
    assert logs.competitors(ARMS[2]) == ["C", "E"]
    assert logs.competitors(ARMS[3]) == ["C", "E"]


def test_schema_problems_are_named(tmp_path: Path) -> None:
    logs = _logs()
    logs.save(tmp_path)
    assert EvaluationLogs.load(tmp_path).arms == ARMS
    with pytest.raises(LogsError, match="positive"):
        EvaluationLogs(ARMS, logs.requests, logs.impressions.drop(columns=["positive"])).validate()
    with pytest.raises(LogsError, match="exactly one arm"):
        EvaluationLogs([*ARMS, ArmSpec("C2", "control", "x")], logs.requests, logs.impressions).validate()
    with pytest.raises(LogsError, match="not in arms.json"):
        EvaluationLogs(ARMS[:3], logs.requests, logs.impressions).validate()
    with pytest.raises(LogsError, match="missing"):
        EvaluationLogs.load(tmp_path / "nowhere")


def test_assign_buckets_splits_by_descending_score() -> None:
    assert assign_buckets([0.1, 0.9, 0.5, 0.3, 0.7], count=5).tolist() == [5, 1, 3, 4, 2]
    assert assign_buckets([0.2, 0.2, 0.9, 0.1], count=2).tolist() == [1, 2, 1, 2]


def test_bucket_gains_compare_treatment_with_baselines_per_bucket() -> None:
    # 10 requests, scores 0.9 .. 0.0; buckets of two: one served by T, one by C; T's gain shrinks with the score
    rows, impressions = [], []
    for number in range(10):
        request, arm, score = f"r{number}", "T" if number % 2 == 0 else "C", 0.9 - 0.1 * number
        bucket = 1 + number // 2
        value = 0.5 + 0.1 * (5 - bucket) if arm == "T" else 0.5
        rows.append({"request_id": request, "user_id": request, "arm": arm, "context_item_id": "k", "history": ["k"]})
        rows[-1]["visual_score"] = score
        impressions += [
            {
                "request_id": request,
                "arm": arm,
                "item_id": f"i{i}",
                "position": i,
                "positive": True,
                "satisfaction": value,
            }
            for i in range(2)
        ]
    logs = EvaluationLogs(ARMS[:3:2] + [ARMS[1]], pd.DataFrame(rows), pd.DataFrame(impressions))
    result = bucket_gains(logs, "T", ["C"], count=5, resamples=10)
    assert [row["gain"]["value"] for row in result["rows"]] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])
    assert [row["score_max"] for row in result["rows"]] == pytest.approx([0.9, 0.7, 0.5, 0.3, 0.1])
    assert result["spearman_bucket_vs_gain"] == pytest.approx(-1.0)


def test_visual_interest_classifier_separates_busy_from_flat_frames() -> None:
    rng = np.random.default_rng(0)
    busy = [rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8) for _ in range(20)]
    flat = [np.full((4, 16, 16, 3), rng.integers(100, 140), dtype=np.uint8) for _ in range(20)]
    features = np.stack([frame_features(frames) for frames in busy + flat])
    classifier = VisualInterestClassifier().fit(features, [1] * 20 + [0] * 20)
    scores = classifier.score(features)
    assert scores[:20].min() > 0.5 > scores[20:].max()
