"""``python -m bench.scale``: the exponent fit, stage isolation, and the whole pipeline at a tiny size."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from bench.scale import run as scale_run
from bench.scale.fit import fit_exponent
from bench.scale.isolation import DID_NOT_FIT, OK, run_isolated
from bench.scale.report import SECTION_BEGIN, SECTION_END, ratio_row
from bench.scale.stages import STAGE_NAMES

TINY_ITEMS = 1000
"""about 28 items a planning-level cluster: above the 16 a quantised ANN index needs to train"""


def test_fit_recovers_a_known_power_law() -> None:
    sizes = [10_000, 100_000, 1_000_000]
    assert fit_exponent(sizes, [3e-4 * n**1.5 for n in sizes]) == pytest.approx(1.5)
    assert fit_exponent(sizes, [7.0 * n for n in sizes]) == pytest.approx(1.0)
    # a size that did not fit is left out; one point alone has no slope
    assert fit_exponent(sizes, [2.0 * n**0.5 for n in sizes[:2]] + [None]) == pytest.approx(0.5)
    assert fit_exponent(sizes[:1], [5.0]) is None


def test_least_squares_over_noisy_points() -> None:
    sizes = [1_000, 10_000, 100_000]
    costs = [1.0, 10.0 * 1.2, 100.0]  # the middle point 20 % high: the line through the ends still has slope 1
    expected_slope = (math.log(100.0) - math.log(1.0)) / (math.log(1e5) - math.log(1e3))
    assert fit_exponent(sizes, costs) == pytest.approx(expected_slope, abs=0.05)


def test_ratio_rows_against_the_smallest_size() -> None:
    def retriever(p99: float, exact_p99: float) -> dict:
        return {"stages": {"retriever": {"status": OK, "p99_ms": p99, "exact_p99_ms": exact_p99}}}

    results = {"sizes": {"10000": retriever(20.0, 16.0), "1000000": retriever(36.0, 50.0)}}
    assert ratio_row(results, "retriever_p99", "retriever", "p99_ms", 2.0) == {
        "name": "retriever_p99_1m_vs_10k",
        "value": 1.8,
        "goal": "<= 2.0",
        "met": True,
        "sizes": "10k → 1m",
    }
    # against whichever way served the small world faster (here exact, 16 ms)
    faster = ratio_row(results, "retriever_ann_p99", "retriever", "p99_ms", None, ("exact_p99_ms",), "vs_faster")
    assert (faster["name"], faster["value"], faster["met"]) == ("retriever_ann_p99_1m_vs_faster_10k", 2.25, None)


def test_isolated_stage_outcomes(tmp_path: Path) -> None:
    done = run_isolated(dict, {"seconds": 1.5}, tmp_path / "ok.log", timeout_s=60, memory_limit=None)
    assert done.status == OK and done.figures["seconds"] == 1.5 and done.memory["peak_rss_mb"] > 0
    too_big = run_isolated(bytearray, 2**40, tmp_path / "big.log", timeout_s=60, memory_limit=2 * 2**30)
    assert too_big.status == DID_NOT_FIT and "MemoryError" in too_big.to_dict()["reason"]
    started = time.monotonic()
    too_slow = run_isolated(time.sleep, 60, tmp_path / "slow.log", timeout_s=1, memory_limit=None)
    assert too_slow.status == DID_NOT_FIT and "timeout" in too_slow.to_dict()["reason"]
    assert time.monotonic() - started < 30


def test_merge_from_keeps_this_runs_stages_and_fills_the_others(tmp_path: Path) -> None:
    earlier = {
        "date": "2026-01-01T00:00:00Z",
        "sizes": {
            "10000": {
                "users": 7500,
                "stages": {"world": {"status": OK, "seconds": 1.0}, "ann": {"status": OK, "seconds": 9.0}},
            },
            "100000": {"users": 75000, "stages": {"world": {"status": OK, "seconds": 10.0}}},
        },
    }
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(earlier))
    results = {"settings": {}, "sizes": {"10000": {"users": 7500, "stages": {"ann": {"status": OK, "seconds": 2.0}}}}}
    scale_run.merge_earlier(results, path)
    assert results["sizes"]["10000"]["stages"] == {
        "world": {"status": OK, "seconds": 1.0},
        "ann": {"status": OK, "seconds": 2.0},  # this run's figure wins
    }
    assert list(results["sizes"]["100000"]["stages"]) == ["world"]
    assert results["settings"]["merged_from"] == {"json": str(path), "date": "2026-01-01T00:00:00Z"}


@pytest.mark.slow  # about 90 s on 2 cores: nine child interpreters, tritonserver, two services
def test_whole_pipeline_at_a_tiny_size(tmp_path: Path) -> None:
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\nkept text\n")
    results = scale_run.main(
        [
            "--sizes", str(TINY_ITEMS),
            "--output-dir", str(tmp_path / "results"),
            "--work-dir", str(tmp_path / "work"),
            "--markdown", str(markdown),
            "--duration-s", "1",
            "--concurrency", "4",
            "--stage-timeout-s", "300",
        ]
    )  # fmt: skip
    stages = results["sizes"][str(TINY_ITEMS)]["stages"]
    assert list(stages) == list(STAGE_NAMES)
    for name, outcome in stages.items():
        assert outcome["status"] == OK, (name, outcome)
        assert outcome["seconds"] > 0 and outcome["peak_rss_mb"] > 0, (name, outcome)
    planner, retriever = stages["planner"], stages["retriever"]
    assert planner["cache_p99_ms"] >= planner["cache_p50_ms"] > 0 and planner["cache_failed"] == 0
    assert planner["hot_reload_peak_rss_mb"] >= planner["rss_mb"] > 0
    for prefix in ("", "exact_"):  # with the ANN indexes, then every cluster ranked exactly
        p50, p99, qps = (retriever[f"{prefix}{name}"] for name in ("p50_ms", "p99_ms", "qps"))
        assert p99 >= p50 > 0 and qps > 0 and retriever[f"{prefix}failed"] == 0
    assert stages["plan_table"]["rows"] == 5 * TINY_ITEMS
    ann = stages["ann"]  # an index on every cluster, compared with exact on the same requests
    assert ann["indexed_clusters"] > 0 and ann["recall_at_10"] >= ann["recall_at_10_p5"] > 0
    assert ann["exact_p50_ms"] > 0 and ann["ann_p50_ms"] > 0

    written = json.loads(Path(results["json"]).read_text())
    assert written["acceptance"] == results["acceptance"]
    assert Path(results["png"]).stat().st_size > 10_000
    text = markdown.read_text()
    assert "kept text" in text and SECTION_BEGIN in text and SECTION_END in text
    assert "| tree: build_tree |" in text and "sasrec_epoch_seconds_100k_items" in text
    assert "retriever_ann_recall_at_10" in text
