"""What each arm sends for a fresh upload: context-similar SASRec's cold start, the Planner's context_content
built from the upload's own video; and the --fresh-world check that the regenerated world is the same world."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serendip.core.frames import encode_video
from serendip.evaluation import arms
from serendip.evaluation.replay import ArmSpec
from serendip.evaluation.simulator import EvaluationRequest
from serendip.jobs.evaluate import fresh_uploads_for
from serendip.offline.world import WorldConfig, generate_world
from serendip.v1 import common_pb2, planner_pb2, retriever_pb2

SPEC = ArmSpec("arm", "exploration", "arm")
HEAD = EvaluationRequest("r1", "u1", "v1", ("v0", "v1"), "v2")
FRESH = EvaluationRequest("r1-fresh", "u1", "f07", ("v0", "v1"), None, "fresh")


def _capture_retrieve(monkeypatch: pytest.MonkeyPatch) -> list[retriever_pb2.RetrieveRequest]:
    sent: list[retriever_pb2.RetrieveRequest] = []

    async def fake(channel: object, request: retriever_pb2.RetrieveRequest, timeout_s: float) -> tuple[str, ...]:
        sent.append(request)
        return ("p1", "p2")

    monkeypatch.setattr(arms, "_retrieve", fake)
    return sent


def test_context_similar_serves_popular_items_for_an_unknown_context(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _capture_retrieve(monkeypatch)
    arm = arms.ContextSimilarArm(SPEC, "unused", known_items={"v0", "v1", "v2"})
    head, fresh = (asyncio.run(arm.slate(None, request, 2, 1.0)) for request in (HEAD, FRESH))  # type: ignore[arg-type]
    assert sent[0].mode == retriever_pb2.RETRIEVAL_MODE_CONTEXT_SIMILAR and sent[0].context_item.item_id == "v1"
    assert sent[1].mode == retriever_pb2.RETRIEVAL_MODE_UNRESTRICTED and not sent[1].history.events  # popularity
    assert set(sent[1].exclude_item_ids) == {"v0", "v1", "f07"}
    assert (head.plan_source, fresh.plan_source) == ("", "COLD_START")


def test_the_planner_arm_sends_the_uploads_own_content(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    frames = np.zeros((12, 32, 32, 3), dtype=np.uint8)
    frames[:, :16] = (200, 30, 30)
    encode_video(frames, tmp_path / "f07.mp4", 8)
    Image.fromarray(frames[0]).save(tmp_path / "f07.jpg")
    content = arms.upload_content(tmp_path / "f07.mp4", tmp_path / "f07.jpg", "a new video", num_frames=4)
    assert len(content.frames_jpeg) == 4 and content.title == "a new video"
    assert content.thumbnail_jpeg == (tmp_path / "f07.jpg").read_bytes()
    first = np.asarray(Image.open(io.BytesIO(content.frames_jpeg[0])))
    assert first.shape == (32, 32, 3) and abs(int(first[4, 4, 0]) - 200) < 20  # the upload's own pixels
    assert arms.upload_content(None, None, "title only", 4).frames_jpeg == []

    sent: list[planner_pb2.RecommendRequest] = []

    class FakeStub:
        def __init__(self, channel: object) -> None:
            pass

        async def Recommend(self, request: planner_pb2.RecommendRequest, timeout: float):  # noqa: N802
            sent.append(request)
            return planner_pb2.RecommendResponse(plan=planner_pb2.PlanResponse(source=planner_pb2.PLAN_SOURCE_LIVE))

    monkeypatch.setattr(arms.planner_pb2_grpc, "PlannerStub", FakeStub)
    arm = arms.PlannerArm(SPEC, "unused", 1, {"f07": content})
    for request in (HEAD, FRESH):
        assert asyncio.run(arm.slate(None, request, 2, 1.0)).plan_source == "LIVE"  # type: ignore[arg-type]
    assert not sent[0].HasField("context_content")
    assert sent[1].context_content == content and sent[1].context_item.item_id == "f07"
    assert isinstance(sent[1].context_content, common_pb2.VideoContent)


def test_fresh_uploads_come_only_from_the_same_world_regenerated(tmp_path: Path) -> None:
    config = WorldConfig(num_items=60, num_users=40, branching=(2, 2, 3, 2), seed=4, with_video=False)

    def world(name: str, **changes: int) -> Path:
        return generate_world(replace(config, **changes), tmp_path / name, progress=False, log=lambda _: None)

    old, regenerated, other = world("old", fresh_uploads=0), world("new", fresh_uploads=5), world("x", seed=9)
    assert fresh_uploads_for(old, None) is None
    fresh = fresh_uploads_for(old, regenerated)
    assert fresh is not None and len(fresh.items) == 5
    with pytest.raises(SystemExit, match="is not the evaluated world"):
        fresh_uploads_for(old, other)
    with pytest.raises(SystemExit, match="no fresh uploads"):
        fresh_uploads_for(old, old)
