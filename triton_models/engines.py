"""The one place that picks a planner engine: ``torch`` (transformers, CPU or CUDA) or ``tensorrt_llm``."""

from __future__ import annotations

import os
from enum import StrEnum

from triton_models.torch_engine import PlannerEngine, TorchPlannerEngine


class EngineKind(StrEnum):
    """Which runtime executes the MLLM."""

    TORCH = "torch"
    TENSORRT_LLM = "tensorrt_llm"


def load_planner_engine(
    kind: EngineKind | str, directory: str | os.PathLike[str], device: str = "auto"
) -> PlannerEngine:
    """Load the MLLM artifact in ``directory`` with engine ``kind`` on ``device`` (torch engine only)."""
    kind = EngineKind(kind)
    if kind is EngineKind.TORCH:
        return TorchPlannerEngine.from_artifact(directory, device=device)
    from triton_models.trtllm_engine import TensorRTLLMPlannerEngine

    return TensorRTLLMPlannerEngine(directory)
