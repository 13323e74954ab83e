"""``kill -9`` of a Planner process mid-work, then a restart: every overlay entry written before the kill is served."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.overlay import read_overlay
from serendip.artifacts.store import read_manifest
from serendip.stack import ServiceProcess
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc

Source = planner_pb2.PlanSource


def _plan(address: str, item_id: str, timeout: float) -> planner_pb2.PlanResponse:
    with grpc.insecure_channel(address) as channel:
        request = planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id=item_id), num_clusters=2)
        return planner_pb2_grpc.PlannerStub(channel).Plan(request, timeout=timeout)


def test_overlay_written_before_a_kill_is_served_after_restart(pipeline, stack_triton, pipeline_tree, tmp_path: Path):
    bundle = resolve_bundle(pipeline.root)
    mllm_sha256 = read_manifest(bundle.mllm)["content_sha256"]
    args = ["--curation", str(bundle.curation), "--mllm", str(bundle.mllm), "--items", str(bundle.catalogue)]
    args += ["--triton-url", stack_triton.grpc_url, "--overlay", str(tmp_path), "--log-level", "WARNING"]
    planner = ServiceProcess("planner", args, tmp_path / "planner.log")
    address = planner.start()
    items = pipeline_tree.item_ids[:48]
    try:
        for item_id in items:  # misses (no plan table): FALLBACK now, each queued for nearline planning
            assert _plan(address, item_id, timeout=0.05).source != Source.PLAN_SOURCE_CACHE
        deadline = time.monotonic() + 120
        while len(read_overlay(tmp_path, mllm_sha256)) == 0:
            assert time.monotonic() < deadline, "no nearline batch was ever written"
            time.sleep(0.1)
        planner.kill()  # SIGKILL while later batches are still being planned
    finally:
        planner.stop()
    written = set(read_overlay(tmp_path, mllm_sha256)["item_id"])  # a kill -9 leaves no half segment behind
    assert written and written <= set(items)
    restarted = ServiceProcess("planner", args, tmp_path / "planner-restarted.log")
    address = restarted.start()
    try:
        sources = {item_id: _plan(address, item_id, timeout=1.0) for item_id in written}
    finally:
        restarted.stop()
    assert {response.source for response in sources.values()} == {Source.PLAN_SOURCE_CACHE}
    assert all(response.plan_version.startswith("overlay-") for response in sources.values())
