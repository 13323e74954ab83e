"""Planner building blocks on hand-made inputs: demotion, coalescing, fallback ranking, plan-table reload."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from planner.__main__ import parse_args
from planner.admission import LatencyEstimate, LiveAdmission
from planner.content import content_from_request, decode_jpeg
from planner.fallback import FallbackPolicy
from planner.plan_watcher import PlanTableWatcher
from planner.planning import Planned, Planner, PlannerSettings, demote_recent
from serendip.artifacts.plans import PlanTable, plan_rows, publish_plan_table
from serendip.core.recency import recent_items
from serendip.service.errors import InvalidArgumentError
from serendip.v1 import common_pb2
from tests.retriever.chain_world import build_tree


def test_demote_recent_moves_consumed_clusters_last() -> None:
    plan = [Planned("a", 3.0), Planned("b", 2.0), Planned("c", 1.0), Planned("d", 0.0)]
    assert [p.cluster_id for p in demote_recent(plan, {"a", "c"}, 3)] == ["b", "d", "a"]
    assert [p.cluster_id for p in demote_recent(plan, set(), 2)] == ["a", "b"]


def test_recent_window_limits_the_demoted_clusters_to_the_last_items() -> None:
    tree = build_tree()  # items i00-i04 in c3-000, i05-i09 in c3-001, i10-i14 in c3-010
    columns = ["context_item_id", "cluster_id", "satisfaction", "pairs"]
    policy = FallbackPolicy.from_candidates(pd.DataFrame(columns=columns), tree, 3, 1)
    history = ["i10", "i05", "i00"]  # oldest first: the context is the last item
    whole = Planner(tree, 3, 1, policy)
    assert whole.recent_clusters(history) == {"c3-010", "c3-001", "c3-000"}
    last_two = Planner(tree, 3, 1, policy, settings=PlannerSettings(recent_window=2))
    assert last_two.recent_clusters(history) == {"c3-001", "c3-000"}
    assert last_two.recent_clusters([]) == set()
    rule_off = Planner(tree, 3, 1, policy, settings=PlannerSettings(recent_window=0))
    assert rule_off.recent_clusters(history) == set()


def test_planner_cli_takes_window_zero_and_refuses_a_negative_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--recent-window", "0"]).recent_window == 0
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--recent-window", "-1"])
    assert exit_info.value.code == 2 and "--recent-window must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("window", "recent"), [(None, ["a", "b", "c"]), (0, []), (1, ["c"]), (2, ["b", "c"]), (5, ["a", "b", "c"])]
)
def test_recent_items_window(window: int | None, recent: list[str]) -> None:
    assert list(recent_items(["a", "b", "c"], window)) == recent
    with pytest.raises(ValueError, match="window"):
        recent_items(["a"], -1)


def test_live_admission_shares_identical_concurrent_work() -> None:
    calls = []

    async def work() -> str:
        calls.append(1)
        await asyncio.sleep(0.05)
        return "plan"

    async def scenario() -> list[str]:
        admission = LiveAdmission()
        results = await asyncio.gather(*(admission.wait(("v1", 3), work, timeout_s=2) for _ in range(10)))
        assert len(admission.runs) == 0
        assert admission.latency.samples == 1 and 0.04 < admission.latency.mean_s < 1.0
        return list(results)

    assert asyncio.run(scenario()) == ["plan"] * 10
    assert len(calls) == 1


def test_live_run_outlives_a_caller_whose_deadline_passed() -> None:
    async def work() -> str:
        await asyncio.sleep(0.2)
        return "late plan"

    async def scenario() -> None:
        admission = LiveAdmission()
        with pytest.raises(TimeoutError):
            await admission.wait("v1", work, timeout_s=0.01)
        assert "v1" in admission.runs  # still running after its caller left
        await asyncio.sleep(0.3)
        assert len(admission.runs) == 0 and admission.latency.samples == 1  # finished and measured

    asyncio.run(scenario())


def test_live_admission_refuses_short_budgets_and_a_full_pipeline() -> None:
    async def scenario() -> None:
        admission = LiveAdmission(max_in_flight=2, prior_s=0.1)
        assert admission.refusal("a", remaining_s=0.05) == "budget_below_live_latency"
        assert admission.refusal("a", remaining_s=0.5) is None
        never = asyncio.Event()
        admission.runs.start("a", never.wait)
        admission.runs.start("b", never.wait)
        assert admission.refusal("c", remaining_s=5.0) == "in_flight_bound"
        assert admission.refusal("a", remaining_s=0.0) is None  # joining a run in flight costs nothing
        never.set()
        await asyncio.sleep(0)

    asyncio.run(scenario())


def test_latency_estimate_follows_measurements() -> None:
    estimate = LatencyEstimate(prior_s=0.25)
    assert estimate.value_s == 0.25
    for _ in range(50):
        estimate.observe(0.02)
    assert estimate.value_s == pytest.approx(0.02, abs=0.002)
    estimate.observe(0.2)
    assert estimate.value_s > 0.05  # a slow run widens the budget at once


def test_fallback_ranks_siblings_by_smoothed_satisfaction() -> None:
    tree = build_tree()  # c3-000 and c3-001 are siblings under c2-00; items i00-i04 live in c3-000
    candidates = pd.DataFrame(
        {
            "context_item_id": ["i00", "i01", "i10"],
            "cluster_id": ["c3-001", "c3-001", "c3-011"],
            "satisfaction": [0.9, 0.7, 0.2],
            "pairs": [4, 4, 2],
        }
    )
    policy = FallbackPolicy.from_candidates(candidates, tree, level=3, delta=1, smoothing=2.0)
    prior = (0.9 * 4 + 0.7 * 4 + 0.2 * 2) / 10
    (only,) = policy.for_cluster("c3-000")
    assert only.cluster_id == "c3-001"
    assert only.score == pytest.approx((0.9 * 4 + 0.7 * 4 + prior * 2) / (8 + 2))
    assert [c.cluster_id for c in policy.for_cluster("c3-010")] == ["c3-011"]
    assert policy.for_cluster("c3-010")[0].score == pytest.approx((0.2 * 2 + prior * 2) / 4)
    assert {c.cluster_id for c in policy.for_cluster(None)} == set(tree.nodes_at(3))


def test_plan_table_watcher_swaps_to_new_versions(tmp_path: Path) -> None:
    watcher = PlanTableWatcher(tmp_path / "plans")
    assert not watcher.reload_if_changed() and watcher.table is None
    first = publish_plan_table(tmp_path, plan_rows("v1", [("c3-001", -1.0, "why")]), {"run": 1})
    assert watcher.reload_if_changed()
    assert watcher.table.version == first.name
    assert watcher.table.get("v1")[0].cluster_id == "c3-001" and watcher.table.get("v1")[0].reasoning == "why"
    assert not watcher.reload_if_changed()
    old_table = watcher.table
    publish_plan_table(tmp_path, plan_rows("v1", [("c3-011", -0.5, ""), ("c3-001", -2.0, "")]), {"run": 2})
    assert watcher.reload_if_changed()
    assert [c.cluster_id for c in watcher.table.get("v1")] == ["c3-011", "c3-001"]
    assert old_table.get("v1")[0].cluster_id == "c3-001"  # readers of the old version are unaffected
    assert PlanTable.load(tmp_path).version == watcher.table.version


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_request_content_is_decoded_and_checked() -> None:
    content = content_from_request(
        common_pb2.VideoContent(frames_jpeg=[_jpeg(16, 8)] * 3, thumbnail_jpeg=_jpeg(8, 8), title="t")
    )
    assert content.frames.shape == (3, 8, 16, 3) and content.thumbnail.shape == (8, 8, 3) and content.has_pixels
    with pytest.raises(InvalidArgumentError, match=r"context_content.frames_jpeg\[1\]: is not a decodable JPEG"):
        content_from_request(common_pb2.VideoContent(frames_jpeg=[_jpeg(8, 8), b"garbage"]))
    with pytest.raises(InvalidArgumentError, match="same size"):
        content_from_request(common_pb2.VideoContent(frames_jpeg=[_jpeg(8, 8), _jpeg(16, 8)]))
    with pytest.raises(InvalidArgumentError, match="at most 1 megapixel"):
        decode_jpeg(_jpeg(1100, 1000), "context_content.thumbnail_jpeg")
