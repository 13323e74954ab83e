"""The cluster-profile planner: phrases, distinctive profiles, the prompt, and the engine listing a context's
candidates with their profiles (nothing when the candidates are unknown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.models.mllm.checkpoint import PlannerModel, save_model
from serendip.models.mllm.cluster_profiles import (
    candidate_profiles,
    cluster_profiles,
    description_phrases,
    load_cluster_profiles,
    save_cluster_profiles,
    with_profile_prompts,
)
from serendip.models.mllm.contexts import PlanningContext
from serendip.models.mllm.errors import ModelArtifactError
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import build_answer_grammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant, prompt_text
from tests.mllm.conftest import TWO_FRAMES
from tests.mllm.synthetic import synthetic_examples, synthetic_video
from triton_models.torch_engine import TorchPlannerEngine

PROFILES = PromptVariant.VIDEO_COT_PROFILES


def test_phrases_are_the_parts_of_a_description() -> None:
    text = "the video shows Navy top, mint  bottom, red block right, cyan accent and yellow accent."
    assert description_phrases(text) == ["navy top", "mint bottom", "red block right", "cyan accent", "yellow accent"]


def test_profiles_keep_what_sets_a_cluster_apart() -> None:
    descriptions_of = {
        "a": ["navy top, red block, cyan accent", "navy top, red block, cyan accent"],
        "b": ["navy top, cyan block, red accent", "navy top, cyan block, red accent"],
        "c": ["navy top, yellow block, cyan accent", "navy top, yellow block, red accent"],
    }
    profiles = cluster_profiles(descriptions_of, phrases=2)
    # navy top is everywhere (score 0); a block colour is one cluster's; an accent shared by two scores less
    assert profiles == {
        "a": "red block, cyan accent",
        "b": "cyan block, red accent",
        "c": "yellow block, cyan accent",  # both accents score 1/2 * log(3/2): ties break by phrase
    }
    everywhere = cluster_profiles({"a": ["navy top"], "b": ["navy top"]})
    assert everywhere == {"a": "", "b": ""}  # a phrase every cluster uses says nothing


def test_the_prompt_lists_candidates_in_id_order() -> None:
    descriptions, profiles = {"p0.2": "jazz", "p0.1": "ramen"}, {"p0.1": "red block"}
    listed = candidate_profiles(["p0.2", "p0.1"], descriptions, profiles)
    assert listed == [("ramen", "red block"), ("jazz", "no profile")]
    text = prompt_text(PROFILES, "title", candidate_profiles=listed)
    assert "Candidate clusters: ramen (red block); jazz (no profile).\n" in text and "title" not in text
    assert "Candidate clusters: any." in prompt_text(PROFILES, "t", candidate_profiles=candidate_profiles(None, {}, {}))
    assert PROFILES.is_cot and PROFILES.uses_profiles and PROFILES.curated_variant is PromptVariant.VIDEO_COT


def test_rewritten_examples_name_their_own_candidates() -> None:
    examples, task = synthetic_examples(PromptVariant.VIDEO_COT, TWO_FRAMES, 12)
    profiles = {cluster: f"look of {cluster}" for cluster in task.descriptions}
    for example in with_profile_prompts(examples, task, profiles):
        siblings = task.serendipitous_candidates[task.context_cluster_of[example.context_item_id]]
        for cluster in siblings:
            assert f"{task.descriptions[cluster]} (look of {cluster})" in example.prompt


@pytest.fixture(scope="module")
def profile_artifact(
    tmp_path_factory: pytest.TempPathFactory, untrained_planner: PlannerModel, task: PlanningTask
) -> Path:
    directory = tmp_path_factory.mktemp("profile-artifact")
    save_model(untrained_planner, directory / "model")
    build_answer_grammar(task.descriptions, 3, PROFILES, max_reasoning_chars=20).save(directory)
    PlannerSpec(PROFILES, TWO_FRAMES, level=3, delta=1).save(directory)
    save_cluster_profiles(directory, {cluster: f"{cluster} block" for cluster in task.descriptions})
    return directory


def test_the_engine_prompts_with_the_candidates_profiles(profile_artifact: Path, task: PlanningTask) -> None:
    spec = PlannerSpec.load(profile_artifact)
    assert load_cluster_profiles(profile_artifact, spec)["p0.1"] == "p0.1 block"
    engine = TorchPlannerEngine.from_artifact(profile_artifact, device="cpu", batch_size=2)
    frames = synthetic_video("p0", 0, 1)
    siblings = task.serendipitous_candidates["p0.0"]
    context = PlanningContext("v1", "", frames, candidate_cluster_ids=siblings)
    prompt = engine.encoder.tokenizer.decode(engine.encode_context(context).input_ids)
    assert f"{task.descriptions['p0.1']} (p0.1 block); {task.descriptions['p0.2']} (p0.2 block)." in prompt
    unplaced = engine.encoder.tokenizer.decode(engine.encode_context(PlanningContext("up", "", frames)).input_ids)
    assert "Candidate clusters: any." in unplaced
    plan = engine.rank_clusters([context], n=2)[0]
    assert sorted(entry.cluster_id for entry in plan) == sorted(siblings)


def test_a_profile_planner_without_its_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="cluster_profiles.json"):
        load_cluster_profiles(tmp_path, PlannerSpec(PROFILES, TWO_FRAMES, 3, 1))
    assert load_cluster_profiles(tmp_path, PlannerSpec(PromptVariant.VIDEO_COT, TWO_FRAMES, 3, 1)) == {}
