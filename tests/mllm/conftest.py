"""Session fixtures of the MLLM tests: a synthetic planning task and an untrained tiny Qwen2-VL."""

from __future__ import annotations

import pytest

from serendip.models.mllm.batching import PromptEncoder
from serendip.models.mllm.checkpoint import PlannerModel, build_tiny_model
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.prompts import PromptVariant, VisualSetting
from serendip.models.mllm.training import training_corpus
from tests.mllm.synthetic import synthetic_examples

TWO_FRAMES = VisualSetting(frames=2)


def tiny_planner(seed: int = 0) -> PlannerModel:
    """A fresh untrained tiny model whose tokenizer knows every variant's synthetic prompts and targets."""
    examples = [example for variant in PromptVariant for example in synthetic_examples(variant, TWO_FRAMES, 12)[0]]
    task = synthetic_examples(PromptVariant.TEXT_ONLY, TWO_FRAMES, 1)[1]
    return build_tiny_model(training_corpus(examples, task.descriptions.values()), vocab_size=512, seed=seed)


@pytest.fixture(scope="session")
def untrained_planner() -> PlannerModel:
    """Shared untrained model (read-only: tests that train build their own)."""
    planner = tiny_planner()
    planner.model.eval()
    return planner


@pytest.fixture(scope="session")
def encoder(untrained_planner: PlannerModel) -> PromptEncoder:
    """Prompt encoder of the shared model."""
    return PromptEncoder(untrained_planner.tokenizer, untrained_planner.model.config)


@pytest.fixture(scope="session")
def task() -> PlanningTask:
    """The synthetic task's clusters and candidates."""
    return synthetic_examples(PromptVariant.TEXT_ONLY, TWO_FRAMES, 1)[1]
