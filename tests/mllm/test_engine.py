"""TorchPlannerEngine from an artifact directory: rank_clusters returns n distinct valid clusters, best first."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.models.mllm.checkpoint import PlannerModel, save_model
from serendip.models.mllm.contexts import PlanningContext, load_context
from serendip.models.mllm.errors import ContextError, ModelArtifactError
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import build_answer_grammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant
from tests.mllm.conftest import TWO_FRAMES
from tests.mllm.synthetic import synthetic_video
from triton_models.torch_engine import PlannerEngine, TorchPlannerEngine


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, untrained_planner: PlannerModel, task: PlanningTask
) -> PlannerEngine:
    directory = tmp_path_factory.mktemp("mllm-artifact")
    save_model(untrained_planner, directory / "model")
    build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=20).save(directory)
    PlannerSpec(PromptVariant.VIDEO_COT, TWO_FRAMES, level=3, delta=1).save(directory)
    return TorchPlannerEngine.from_artifact(directory, device="cpu", batch_size=2)


def _context(index: int, **overrides: object) -> PlanningContext:
    frames = synthetic_video("p0", index % 3, (index + 1) % 3)
    return PlanningContext(**({"item_id": f"v{index}", "title": "a title", "frames": frames} | overrides))


def test_rank_clusters_returns_n_distinct_valid_clusters_sorted(engine: PlannerEngine, task: PlanningTask) -> None:
    plans = engine.rank_clusters([_context(index) for index in range(3)], n=4)
    assert len(plans) == 3
    for plan in plans:
        assert len(plan) == 4 and len({entry.cluster_id for entry in plan}) == 4
        assert all(entry.cluster_id in task.descriptions for entry in plan)
        assert [entry.score for entry in plan] == sorted((entry.score for entry in plan), reverse=True)
        assert all(isinstance(entry.reasoning, str) for entry in plan)
    assert engine.descriptions == task.descriptions


def test_candidates_restrict_the_plan_and_are_validated(engine: PlannerEngine, task: PlanningTask) -> None:
    siblings = task.serendipitous_candidates["p0.1"]
    plan = engine.rank_clusters([_context(1, candidate_cluster_ids=siblings)], n=5)[0]
    assert sorted(entry.cluster_id for entry in plan) == sorted(siblings)
    with pytest.raises(ContextError, match="unknown candidate"):
        engine.rank_clusters([_context(1, candidate_cluster_ids=["nope"])], n=1)


def test_frames_are_resampled_and_missing_pixels_are_explained(engine: PlannerEngine) -> None:
    many = engine.rank_clusters([_context(2)], n=2)
    assert len(many[0]) == 2  # 8 given frames -> the artifact's 2
    with pytest.raises(ContextError, match="needs video frames"):
        engine.rank_clusters([_context(0, frames=None)], n=1)
    with pytest.raises(ContextError, match="no video"):
        load_context("v9", "t", TWO_FRAMES, video_path=None)


def test_artifact_errors_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="planner.json"):
        TorchPlannerEngine.from_artifact(tmp_path)
