"""Every arm on head contexts and on fresh-upload contexts, separately.

A *head* request's context is a catalogue item every model was trained on; a *fresh* request's context is an
upload newer than every model (no log, tree node, SASRec embedding or plan). Per segment and arm, with a 95 %
bootstrap interval over the segment's users (``confidence.bootstrap``):

- ``pfr``: positive-feedback ratio, Σ positives / Σ impressions;
- ``nir``: novel impression ratio against the arm's production pool for the same requests (``replay.py``);
- ``good_cluster_share``: share of impressions in one of the context's good (affine or secondary) clusters
  (simulated logs: the ground-truth ``relation``).

Named summary lines ``<segment>_<arm>_<metric>: value [lo, hi]`` (e.g. ``fresh_mllm_pfr``,
``head_bandit_pfr``), plus ``<segment>_best_baseline_pfr``: the best non-treatment arm's (control or
exploration) positive-feedback ratio in that segment. Each arm's entry also holds the shares of its plan
sources and of its impressions' relations to the context, when the logs have them.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import pandas as pd

from serendip.evaluation.confidence import bootstrap
from serendip.evaluation.replay import EvaluationLogs, arm_data, estimate, metric_functions

SEGMENT_METRICS = {"pfr": "positive_feedback_ratio", "nir": "novel_impression_ratio", "good_cluster_share": None}
"""Short name in the summary lines -> metric of ``replay.metric_functions`` (None: the same name)."""


def segment_summary(logs: EvaluationLogs, k: int = 10, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per segment (head first): per arm the SEGMENT_METRICS with intervals, users and requests, and the best
    baseline by positive-feedback ratio; ``lines`` holds the named summary lines."""
    functions = metric_functions(set(), k, math.ceil(k / 2))
    result: dict[str, Any] = {"segments": {}, "lines": {}}
    for number, name in enumerate(logs.segment_names()):
        part = logs.segment(name)
        arms: dict[str, Any] = {}
        for arm_number, arm in enumerate(part.arms):
            data = arm_data(part, arm, None, 0)
            users = len(data.requests_of_user)
            arm_seed = seed + 1000 * arm_number + 100_000 * number
            arms[arm.name] = {"users": users, "requests": len(data.slates)} | {
                short: bootstrap(partial(functions[metric or short], data), users, resamples, arm_seed).to_dict()
                for short, metric in SEGMENT_METRICS.items()
            }
            arms[arm.name] |= _shares(part.impressions[part.impressions["arm"] == arm.name])
        baselines = [arm.name for arm in part.arms if arm.role != "treatment"]
        best = max(baselines, key=lambda arm: _value(arms[arm]["pfr"]), default=None)
        result["segments"][name] = {"arms": arms, "best_baseline": best}
        for arm, values in arms.items():
            for short in SEGMENT_METRICS:
                result["lines"][f"{name}_{arm}_{short}"] = values[short]
        if best is not None:
            result["lines"][f"{name}_best_baseline_pfr"] = arms[best]["pfr"]
    return result


def _shares(impressions: pd.DataFrame) -> dict[str, dict[str, float]]:
    shares = {}
    if "plan_source" in impressions.columns and impressions["plan_source"].astype(bool).any():
        per_request = impressions.drop_duplicates("request_id")["plan_source"]
        shares["plan_source_shares"] = per_request.value_counts(normalize=True).sort_index().round(6).to_dict()
    if "relation" in impressions.columns and len(impressions):
        shares["relation_shares"] = impressions["relation"].value_counts(normalize=True).sort_index().round(6).to_dict()
    return shares


def _value(record: dict[str, float | None]) -> float:
    value = estimate(record).value
    return -math.inf if math.isnan(value) else value


def summary_line(name: str, record: dict[str, float | None]) -> str:
    """``name: value [lo, hi]`` (3 decimals; ``–`` for a missing value or interval)."""
    value = estimate(record)
    if math.isnan(value.value):
        return f"{name}: –"
    interval = "[–, –]" if math.isnan(value.low) else f"[{value.low:.3f}, {value.high:.3f}]"
    return f"{name}: {value.value:.3f} {interval}"
