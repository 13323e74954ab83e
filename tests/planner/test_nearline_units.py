"""Nearline write-back pieces on hand-made inputs: the miss queue, the worker, the durable overlay store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.content import ContextContent
from planner.nearline import MissQueue, NearlineWorker, QueuedMiss
from planner.overlay import OverlayPlans
from serendip.artifacts.overlay import OverlayStore, overlay_dir, read_overlay
from serendip.artifacts.plans import plan_rows
from serendip.core.errors import ArtifactError

SHA_A, SHA_B = "a" * 64, "b" * 64


def _pixels() -> ContextContent:
    return ContextContent("an upload", np.zeros((2, 8, 8, 3), dtype=np.uint8), None)


def test_miss_queue_deduplicates_and_serves_the_most_requested_first() -> None:
    queue = MissQueue(max_items=10)
    for item_id in ["v1", "v2", "v3", "v2", "v3", "v3"]:
        assert queue.offer(item_id, None)
    assert len(queue) == 3
    assert [(miss.item_id, miss.requests) for miss in queue.take(2)] == [("v3", 3), ("v2", 2)]
    assert [miss.item_id for miss in queue.take(5)] == ["v1"] and len(queue) == 0


def test_miss_queue_is_bounded_in_items_and_in_pixel_carrying_entries() -> None:
    queue = MissQueue(max_items=3, max_with_content=1)
    assert queue.offer("upload-1", _pixels())
    assert not queue.offer("upload-2", _pixels())  # pixels are what cost memory
    assert queue.offer("v1", None) and queue.offer("v2", None)
    assert not queue.offer("v3", None) and queue.dropped == 2
    assert queue.offer("v1", None)  # a queued item is only counted again
    assert queue.queued_content("upload-1") is not None and queue.queued_content("v1") is None
    queue.discard("upload-1")
    assert queue.queued_content("upload-1") is None
    assert queue.offer("upload-2", _pixels())


def test_worker_plans_a_batch_and_writes_it_in_one_call() -> None:
    written: list[list[dict]] = []

    async def plan_one(miss: QueuedMiss) -> list[dict] | None:
        if miss.item_id == "no-pixels":
            return None
        if miss.item_id == "broken":
            raise RuntimeError("triton down")
        return plan_rows(miss.item_id, [("c1", -1.0, "why")])

    async def write(rows) -> None:
        written.append(list(rows))

    async def scenario() -> int:
        queue = MissQueue()
        for item_id in ["v1", "no-pixels", "broken", "v2", "v3"]:
            queue.offer(item_id, None)
        worker = NearlineWorker(queue, plan_one, write, batch_size=4)
        first = await worker.run_once()
        assert worker.failed == 2 and len(queue) == 1
        return first + await worker.run_once()

    assert asyncio.run(scenario()) == 3
    assert [sorted({row["item_id"] for row in batch}) for batch in written] == [["v1", "v2"], ["v3"]]


def test_overlay_store_appends_durable_segments_newest_wins(tmp_path: Path) -> None:
    store = OverlayStore(tmp_path, SHA_A, {"mllm_version": "m1"})
    store.append(plan_rows("v1", [("c1", -1.0, "first"), ("c2", -2.0, "first")]))
    store.append(plan_rows("v2", [("c3", -1.0, "")]))
    store.append(plan_rows("v1", [("c4", -0.5, "second")]))
    (store.directory / ".segment-x.parquet.tmp-123").write_bytes(b"half a segment, as a kill -9 leaves it")
    merged = read_overlay(tmp_path, SHA_A)
    assert merged[merged["item_id"] == "v1"]["cluster_id"].tolist() == ["c4"]
    assert sorted(merged["item_id"].unique()) == ["v1", "v2"]
    assert read_overlay(tmp_path, SHA_B).empty  # another MLLM's overlay is another directory
    assert overlay_dir(tmp_path, SHA_A) != overlay_dir(tmp_path, SHA_B)
    assert not [name for name in os.listdir(store.directory) if name.startswith("segment") and "tmp" in name]


def test_overlay_of_another_mllm_is_refused(tmp_path: Path) -> None:
    OverlayStore(tmp_path, SHA_A)
    (overlay_dir(tmp_path, SHA_B)).mkdir(parents=True)
    (overlay_dir(tmp_path, SHA_B) / "lineage.json").write_text('{"mllm_sha256": "' + SHA_A + '"}')
    with pytest.raises(ArtifactError, match="belongs to mllm"):
        OverlayStore(tmp_path, SHA_B)


def test_overlay_plans_survive_a_restart(tmp_path: Path) -> None:
    plans = OverlayPlans(OverlayStore(tmp_path, SHA_A))
    asyncio.run(plans.put(plan_rows("v7", [("c1", -1.0, "r"), ("c2", -3.0, "r")])))
    assert [c.cluster_id for c in plans.get("v7")] == ["c1", "c2"]
    reopened = OverlayPlans(OverlayStore(tmp_path, SHA_A))
    assert [c.cluster_id for c in reopened.get("v7")] == ["c1", "c2"] and reopened.version == plans.version


def test_overlay_compaction_keeps_every_newest_plan(tmp_path: Path) -> None:
    store = OverlayStore(tmp_path, SHA_A)
    for index in range(12):
        store.append(plan_rows(f"v{index % 5}", [(f"c{index}", -1.0, "")]))
    before = read_overlay(tmp_path, SHA_A).sort_values("item_id", ignore_index=True)
    assert not store.compact(max_segments=12) and store.compact(max_segments=4)
    assert len(store.segments()) == 1
    after = read_overlay(tmp_path, SHA_A).sort_values("item_id", ignore_index=True)
    pd.testing.assert_frame_equal(after, before)
    store.append(plan_rows("v0", [("c-newer", -1.0, "")]))  # written after compaction: still wins
    assert read_overlay(tmp_path, SHA_A).set_index("item_id").loc["v0", "cluster_id"] == "c-newer"
