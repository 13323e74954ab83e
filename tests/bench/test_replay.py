"""A bounded traffic replay (``bench.replay``'s part 1): cold misses become CACHE hits once planned nearline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.load.mix import RequestMix
from bench.load.replay import OUTCOMES, one_pass, plot_hit_ratio, prometheus_gauge, replay_traffic, run_replay
from bench.load.stack import LocalStack
from bench.replay import QUEUE_GAUGE, fresh_uploads
from serendip.artifacts.lineage import resolve_bundle


@pytest.mark.slow  # a minute or more; tests/planner covers each nearline behaviour in make test
def test_replay_is_all_cache_after_warmup_with_no_errors(small_artifacts: Path, tmp_path: Path) -> None:
    mix = RequestMix.from_artifacts(small_artifacts, seed=1)
    uploads = fresh_uploads(resolve_bundle(small_artifacts).catalogue, 3, seed=1)
    traffic = replay_traffic(mix, 40, uploads, extra_per_pass=40)

    def passes():
        while True:
            yield one_pass(traffic, mix)

    with LocalStack(small_artifacts, tmp_path / "logs", nearline=True, overlay_root=tmp_path / "overlay") as stack:
        result = asyncio.run(
            run_replay(
                stack.planner_address,
                passes(),
                distinct_items=traffic.distinct_items,
                concurrency=4,
                deadline_s=1.0,  # behaviour, not speed: tight deadlines are bench.replay's (make bench)
                max_seconds=150,
                interval_s=1.0,
                queue_depth=lambda: prometheus_gauge(stack.planner_metrics_url, QUEUE_GAUGE),
            )
        )
    summary = result.summary()
    assert {sent.outcome for sent in result.sent} <= set(OUTCOMES), summary
    first_pass = [sent for sent in result.sent if sent.pass_index == 1]
    assert any(sent.outcome != "CACHE" for sent in first_pass), "a cold start has misses"
    assert result.warmup_end_s is not None, f"the nearline queue never drained: {result.queue_depths}"
    assert summary["cache_share_after_warmup"] >= 0.99 and summary["requests_after_warmup"] >= 2 * 80
    plot_hit_ratio(result, str(tmp_path / "hit_ratio.png"), "test replay")
    assert (tmp_path / "hit_ratio.png").stat().st_size > 0
