"""The CUDA and TensorRT-LLM planner engines (``gpu``: skipped where no CUDA device exists).

The torch engine on CUDA must plan what it plans on CPU; the TensorRT-LLM engine (NGC image only) must return
valid plans through the same ``PlannerEngine`` interface.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serendip.models.mllm.checkpoint import PlannerModel, save_model
from serendip.models.mllm.contexts import PlanningContext
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import build_answer_grammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant
from tests.mllm.conftest import TWO_FRAMES
from tests.mllm.synthetic import synthetic_video
from triton_models.engines import EngineKind, load_planner_engine

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, untrained_planner: PlannerModel, task: PlanningTask) -> Path:
    directory = tmp_path_factory.mktemp("mllm-gpu-artifact")
    save_model(untrained_planner, directory / "model")
    build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=20).save(directory)
    PlannerSpec(PromptVariant.VIDEO_COT, TWO_FRAMES, level=3, delta=1).save(directory)
    return directory


def _contexts() -> list[PlanningContext]:
    return [
        PlanningContext(item_id=f"v{i}", title="a title", frames=synthetic_video("p0", i % 3, (i + 1) % 3))
        for i in range(4)
    ]


def test_torch_engine_on_cuda_plans_what_it_plans_on_cpu(artifact: Path) -> None:
    on_cpu = load_planner_engine(EngineKind.TORCH, artifact, device="cpu").rank_clusters(_contexts(), n=3)
    on_cuda = load_planner_engine(EngineKind.TORCH, artifact, device="cuda").rank_clusters(_contexts(), n=3)
    for cpu_plan, cuda_plan in zip(on_cpu, on_cuda, strict=True):
        assert [entry.cluster_id for entry in cuda_plan] == [entry.cluster_id for entry in cpu_plan]
        for cpu_entry, cuda_entry in zip(cpu_plan, cuda_plan, strict=True):
            assert cuda_entry.score == pytest.approx(cpu_entry.score, abs=1e-3)


def test_tensorrt_llm_engine_returns_valid_plans(artifact: Path, task: PlanningTask) -> None:
    pytest.importorskip("tensorrt_llm", reason="TensorRT-LLM runs only in the NGC tritonserver trtllm image")
    plans = load_planner_engine(EngineKind.TENSORRT_LLM, artifact).rank_clusters(_contexts(), n=2)
    assert len(plans) == 4
    for plan in plans:
        assert len({entry.cluster_id for entry in plan}) == 2
        assert all(entry.cluster_id in task.descriptions for entry in plan)


def test_cuda_is_visible_to_torch() -> None:
    assert torch.cuda.is_available() and torch.cuda.device_count() >= 1
