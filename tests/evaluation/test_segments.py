"""Head and fresh-upload contexts are reported apart: exact per-segment values on a hand-made log, the named
summary lines, and the report section."""

from __future__ import annotations

import pandas as pd
import pytest

from serendip.evaluation.replay import ArmSpec, EvaluationLogs, replay_metrics
from serendip.evaluation.report import markdown_table, paper_shape
from serendip.evaluation.segments import segment_summary, summary_line

ARMS = [ArmSpec("C", "control", "control"), ArmSpec("B", "exploration", "bandit"), ArmSpec("T", "treatment", "mllm")]
# request -> (segment, serving arm, items, positive, relation); users u1..u3 each have a head and a fresh request
REQUESTS = {
    "r1": ("head", "C", ["a", "b"], [True, False], ["same", "random"]),
    "r2": ("head", "B", ["c", "d"], [True, True], ["affine", "same"]),
    "r3": ("head", "T", ["e", "f"], [False, True], ["affine", "secondary"]),
    "r1-fresh": ("fresh", "C", ["a", "b"], [False, False], ["random", "random"]),
    "r2-fresh": ("fresh", "B", ["g", "h"], [True, False], ["serendipitous", "random"]),
    "r3-fresh": ("fresh", "T", ["i", "j"], [True, True], ["affine", "affine"]),
}
USER = {"r1": "u1", "r2": "u2", "r3": "u3"}


def _logs(with_segments: bool = True) -> EvaluationLogs:
    requests = pd.DataFrame(
        [
            {
                "request_id": r,
                "user_id": USER[r.removesuffix("-fresh")],
                "arm": arm,
                "context_item_id": "k" if segment == "head" else "new",
                "history": ["k"],
                **({"segment": segment} if with_segments else {}),
            }
            for r, (segment, arm, *_rest) in REQUESTS.items()
        ]
    )
    impressions = pd.DataFrame(
        [
            {"request_id": r, "arm": arm, "item_id": item, "position": i, "positive": positive[i],
             "relation": relation[i]}
            for r, (_segment, arm, items, positive, relation) in REQUESTS.items()
            for i, item in enumerate(items)
        ]
    )  # fmt: skip
    # every arm nominates its served slate for every request (the other arms: a fixed pair "a", "b")
    nominations = pd.DataFrame(
        [
            {"request_id": r, "arm": other.name, "item_id": item, "position": i}
            for r, (_segment, arm, items, _p, _rel) in REQUESTS.items()
            for other in ARMS
            for i, item in enumerate(items if other.name == arm else ["a", "b"])
        ]
    )
    return EvaluationLogs(ARMS, requests, impressions, nominations)


def test_segments_are_split_by_the_segment_column() -> None:
    logs = _logs()
    assert logs.segment_names() == ["head", "fresh"]
    assert list(logs.segment("fresh").requests["request_id"]) == ["r1-fresh", "r2-fresh", "r3-fresh"]
    assert set(logs.segment("head").nominations["request_id"]) == {"r1", "r2", "r3"}
    plain = _logs(with_segments=False)
    assert plain.segment_names() == ["head"] and plain.segment("head") is plain
    assert plain.segment("fresh").requests.empty


def test_segment_summary_is_exact_per_segment() -> None:
    summary = segment_summary(_logs(), k=2, resamples=20, seed=0)
    lines = {name: record["value"] for name, record in summary["lines"].items()}
    assert lines["head_C_pfr"] == 0.5 and lines["head_B_pfr"] == 1.0 and lines["head_T_pfr"] == 0.5
    assert lines["fresh_C_pfr"] == 0.0 and lines["fresh_B_pfr"] == 0.5 and lines["fresh_T_pfr"] == 1.0
    assert lines["head_T_good_cluster_share"] == 1.0 and lines["fresh_T_good_cluster_share"] == 1.0
    assert lines["head_B_good_cluster_share"] == 0.5 and lines["fresh_B_good_cluster_share"] == 0.0
    # C's slate is the others' ("a", "b"): nothing novel; B and T nominate items nobody else does
    assert lines["fresh_C_nir"] == 0.0 and lines["fresh_B_nir"] == 1.0 and lines["fresh_T_nir"] == 1.0
    assert summary["segments"]["fresh"]["best_baseline"] == "B" and lines["fresh_best_baseline_pfr"] == 0.5
    assert summary["segments"]["head"]["arms"]["T"]["users"] == 1
    assert summary["segments"]["fresh"]["arms"]["B"]["relation_shares"] == {"random": 0.5, "serendipitous": 0.5}
    assert list(summary["segments"]) == ["head", "fresh"]


def test_summary_lines_and_the_report_section() -> None:
    assert summary_line("fresh_mllm_pfr", {"value": 0.61234, "low": 0.5, "high": 0.7}) == (
        "fresh_mllm_pfr: 0.612 [0.500, 0.700]"
    )
    assert summary_line("x", {"value": None, "low": None, "high": None}) == "x: –"
    logs = _logs()
    results = replay_metrics(logs.segment("head"), k=2, resamples=20) | {"k": 2}
    results["segments"] = segment_summary(logs, k=2, resamples=20)
    results["paper_shape"] = paper_shape(results)
    table = markdown_table(results)
    assert "## Head vs fresh-upload contexts" in table
    assert "fresh_T_pfr: 1.000 [" in table and "head_B_pfr: 1.000 [" in table
    assert "fresh: best baseline by positive-feedback ratio = bandit" in table
    assert results["metrics"]["T"]["good_cluster_share"]["value"] == pytest.approx(1.0)
    no_fresh = {**results, "segments": {**segment_summary(_logs(False), k=2, resamples=5), "note": "regenerate"}}
    assert "No fresh-upload segment. regenerate" in markdown_table(no_fresh)
