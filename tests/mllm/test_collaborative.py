"""The keyword-RAG planner (MMSRARec's collaborative context): prompts, training dropout, the artifact's table,
and the engine prompting an item with its related keywords (and a fresh upload with none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.core import prompts as data_prompts
from serendip.core.errors import ConfigError
from serendip.models.mllm.checkpoint import PlannerModel, save_model
from serendip.models.mllm.collaborative import (
    keeps_related,
    load_related_keywords,
    save_related_keywords,
    with_related_prompts,
)
from serendip.models.mllm.contexts import PlanningContext
from serendip.models.mllm.errors import ModelArtifactError
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import build_answer_grammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant, parse_response, prompt_text, target_text
from tests.mllm.conftest import TWO_FRAMES
from tests.mllm.synthetic import synthetic_examples, synthetic_video
from triton_models.torch_engine import TorchPlannerEngine

RAG = PromptVariant.VIDEO_COT_RAG
RELATED = {"v000": "red accent golf", "v001": "cyan  block\tsurf"}


def test_rag_prompt_carries_the_keywords_or_says_none_yet() -> None:
    with_keywords = prompt_text(RAG, "ignored title", "cyan  block\tsurf")
    assert "also engaged with: cyan block surf.\n" in with_keywords and "ignored title" not in with_keywords
    assert with_keywords.endswith(prompt_text(PromptVariant.VIDEO_COT, "").split("\n", 1)[1])
    assert "also engaged with: none yet." in prompt_text(RAG, "t")
    assert RAG.is_cot and RAG.uses_video and RAG.uses_related and RAG.curated_variant is PromptVariant.VIDEO_COT
    assert not PromptVariant.VIDEO_COT.uses_related
    target = target_text(RAG, "waterfall golf", "navy top, red accent")
    assert target == target_text(PromptVariant.VIDEO_COT, "waterfall golf", "navy top, red accent")
    assert parse_response(RAG, target).answer == "waterfall golf"
    with pytest.raises(ConfigError, match="video_cot_rag"):
        data_prompts.prompt_text("video_rag", "t")


def test_rewritten_examples_keep_targets_and_drop_a_stable_share() -> None:
    examples, _ = synthetic_examples(PromptVariant.VIDEO_COT, TWO_FRAMES, 400)
    related = {example.context_item_id: f"kw{index}" for index, example in enumerate(examples)}
    kept = with_related_prompts(examples, related, dropout=0.25, seed=3)
    assert [example.target for example in kept] == [example.target for example in examples]
    with_keywords = [example for example in kept if "none yet" not in example.prompt]
    assert 0.65 < len(with_keywords) / len(kept) < 0.85
    for example in with_keywords:
        assert f"also engaged with: {related[example.context_item_id]}." in example.prompt
    assert with_related_prompts(examples, related, dropout=0.25, seed=3) == kept
    assert all(keeps_related(example.example_id, 0.0, 3) for example in examples)
    unknown = with_related_prompts(examples[:3], {}, dropout=0.0)
    assert all("none yet" in example.prompt for example in unknown)


@pytest.fixture(scope="module")
def rag_artifact(tmp_path_factory: pytest.TempPathFactory, untrained_planner: PlannerModel, task: PlanningTask) -> Path:
    directory = tmp_path_factory.mktemp("rag-artifact")
    save_model(untrained_planner, directory / "model")
    build_answer_grammar(task.descriptions, 3, RAG, max_reasoning_chars=20).save(directory)
    PlannerSpec(RAG, TWO_FRAMES, level=3, delta=1).save(directory)
    save_related_keywords(directory, RELATED)
    return directory


def test_the_artifact_table_round_trips_and_is_required(rag_artifact: Path, tmp_path: Path) -> None:
    spec = PlannerSpec.load(rag_artifact)
    assert load_related_keywords(rag_artifact, spec) == RELATED
    assert load_related_keywords(tmp_path, PlannerSpec(PromptVariant.VIDEO_COT, TWO_FRAMES, 3, 1)) == {}
    with pytest.raises(ModelArtifactError, match="related_keywords.parquet"):
        load_related_keywords(tmp_path, spec)


def test_the_engine_prompts_an_item_with_its_keywords_and_an_upload_with_none(rag_artifact: Path) -> None:
    engine = TorchPlannerEngine.from_artifact(rag_artifact, device="cpu", batch_size=2)
    frames = synthetic_video("p0", 0, 1)
    tokenizer = engine.encoder.tokenizer

    def prompt_of(item_id: str) -> str:
        return tokenizer.decode(engine.encode_context(PlanningContext(item_id, "", frames)).input_ids)

    assert "also engaged with: red accent golf." in prompt_of("v000")
    assert "also engaged with: none yet." in prompt_of("fresh-upload")
    plans = engine.rank_clusters([PlanningContext("v000", "", frames), PlanningContext("up", "", frames)], n=2)
    assert all(len(plan) == 2 and isinstance(plan[0].reasoning, str) for plan in plans)
