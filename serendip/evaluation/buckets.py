"""Paper Fig. 8: satisfaction gain of MLLM-nominated over non-MLLM candidates per visually-interesting bucket.

The visually-interesting score of a context item is the world's ``visual_richness`` (how long and how clearly
its video shows the accent that reveals its affine cluster) or, for real data, the probability of a small
binary classifier on frame features (:class:`VisualInterestClassifier`, paper §4.2: "a binary classifier
trained on video content embeddings"). Requests are split into equal-count buckets by their context's score;
bucket 1 holds the most visually interesting contexts, bucket 5 the least (paper Fig. 8b).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from serendip.core.frames import frame_visual_features, sample_frames
from serendip.evaluation.confidence import bootstrap_ratio
from serendip.evaluation.replay import GOOD_RELATIONS, EvaluationLogs
from serendip.offline.tree_builder import VISUAL_PARTS

DEFAULT_BUCKETS = 5


def world_visual_scores(ground_truth: pd.DataFrame) -> dict[str, float]:
    """item_id -> the world's visual richness in [0, 1] (ground truth)."""
    return dict(zip(ground_truth["item_id"], ground_truth["visual_richness"].astype(float), strict=True))


def frame_features(frames: np.ndarray) -> np.ndarray:
    """One vector per video: the tree builder's colour histogram and 2x2 / 4x4 mean-colour grids, concatenated."""
    parts = frame_visual_features(frames)
    return np.concatenate([parts[name] for name in VISUAL_PARTS])


class VisualInterestClassifier:
    """Logistic regression "is this video visually interesting?" on :func:`frame_features` of sampled frames."""

    def __init__(self, frames_per_item: int = 4, seed: int = 0) -> None:
        self.frames_per_item = frames_per_item
        self.model = LogisticRegression(max_iter=1000, random_state=seed)

    def video_features(self, video_paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """[n, d] features of uniformly sampled frames of each video (decoded with the project's sampler)."""
        return np.stack([frame_features(sample_frames(path, self.frames_per_item).frames) for path in video_paths])

    def fit(self, features: np.ndarray, labels: Sequence[int]) -> VisualInterestClassifier:
        """Train on labelled videos (1: visually interesting)."""
        self.model.fit(features, np.asarray(labels, dtype=np.int64))
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """P(visually interesting) per video, in [0, 1]."""
        return self.model.predict_proba(features)[:, 1]


def assign_buckets(scores: Sequence[float], count: int = DEFAULT_BUCKETS) -> np.ndarray:
    """Equal-count buckets 1..count by descending score (1 = most visually interesting; ties keep input order)."""
    values = np.asarray(scores, dtype=np.float64)
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(len(values))
    return 1 + ranks * count // max(len(values), 1)


def _by_request(impressions: pd.DataFrame, values: pd.Series) -> dict[str, np.ndarray]:
    return {request: group.to_numpy() for request, group in values.groupby(impressions["request_id"], sort=False)}


def _pooled_mean(groups: list[np.ndarray]) -> float | None:
    return float(np.concatenate(groups).mean()) if groups else None


def _resampled_mean(groups: list[np.ndarray]):
    return lambda indices: float(np.concatenate([groups[i] for i in indices]).mean()) if len(indices) else math.nan


def bucket_gains(
    logs: EvaluationLogs,
    treatment: str,
    baselines: Sequence[str],
    count: int = DEFAULT_BUCKETS,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per bucket, mean user value of ``treatment``'s impressions over the ``baselines``' impressions − 1.

    User value is the impression's satisfaction (or its positive feedback when the logs have no satisfaction).
    Buckets are cut over all scored requests of the experiment, so every arm's segment spreads over them; the
    interval resamples the requests of both sides independently. Also returns the Spearman correlation of the
    bucket number with the gain (negative: the more visually interesting, the larger the gain — the paper's
    shape). With simulated logs (a ``relation`` column) each row also holds the share of impressions in one of
    the context's good clusters (affine or secondary), for treatment and baselines.
    """
    requests = logs.requests.dropna(subset=["visual_score"]) if "visual_score" in logs.requests else logs.requests[:0]
    requests = requests.assign(bucket=assign_buckets(requests["visual_score"].to_numpy(), count))
    impressions = logs.impressions
    has_satisfaction = "satisfaction" in impressions and impressions["satisfaction"].notna().all()
    values = _by_request(impressions, impressions["satisfaction" if has_satisfaction else "positive"].astype(float))
    good = None
    if "relation" in impressions:
        good = _by_request(impressions, impressions["relation"].isin(GOOD_RELATIONS).astype(float))
    rows = []
    for bucket in range(1, count + 1):
        in_bucket = requests[requests["bucket"] == bucket]
        treated_requests = [r for r in in_bucket.loc[in_bucket["arm"] == treatment, "request_id"] if r in values]
        other_requests = [r for r in in_bucket.loc[in_bucket["arm"].isin(baselines), "request_id"] if r in values]
        treated, others = [values[r] for r in treated_requests], [values[r] for r in other_requests]
        gain = bootstrap_ratio(
            _resampled_mean(treated), len(treated), _resampled_mean(others), len(others), resamples, seed + bucket
        )
        row = {
            "bucket": bucket,
            "score_min": float(in_bucket["visual_score"].min()) if len(in_bucket) else None,
            "score_max": float(in_bucket["visual_score"].max()) if len(in_bucket) else None,
            "treatment_requests": len(treated),
            "baseline_requests": len(others),
            "treatment_value": _pooled_mean(treated),
            "baseline_value": _pooled_mean(others),
            "gain": gain.to_dict(),
        }
        if good is not None:
            row["treatment_good_cluster_share"] = _pooled_mean([good[r] for r in treated_requests])
            row["baseline_good_cluster_share"] = _pooled_mean([good[r] for r in other_requests])
        rows.append(row)
    gains = pd.Series([row["gain"]["value"] for row in rows], dtype=float)
    buckets = pd.Series([row["bucket"] for row in rows], dtype=float)
    valid = gains.notna()
    spearman = float(buckets[valid].corr(gains[valid], method="spearman")) if valid.sum() > 1 else math.nan
    return {
        "treatment": treatment,
        "baselines": list(baselines),
        "rows": rows,
        "spearman_bucket_vs_gain": None if math.isnan(spearman) else round(spearman, 6),
    }


def visual_scores_for(requests: pd.DataFrame, scores: Mapping[str, float]) -> pd.Series:
    """The context items' scores aligned with ``requests`` (NaN where unknown)."""
    return requests["context_item_id"].map(lambda item: scores.get(item, math.nan)).astype(float)
