"""Constrained decoding and ranking with an *untrained* model: always valid, distinct, sorted, exact scores."""

from __future__ import annotations

import pytest
import torch

from serendip.models.mllm.batching import EncodedPrompt, PromptEncoder, training_batch
from serendip.models.mllm.checkpoint import PlannerModel
from serendip.models.mllm.decoding import (
    description_candidates,
    generate_responses,
    rank_descriptions,
    score_descriptions,
)
from serendip.models.mllm.errors import MllmConfigError
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import build_answer_grammar, compile_grammar
from serendip.models.mllm.prompts import PromptVariant, VisualSetting, chat_messages, parse_response
from serendip.models.mllm.vision_inputs import pixels_to_input
from tests.mllm.conftest import TWO_FRAMES
from tests.mllm.synthetic import synthetic_examples


def _prompts(
    planner: PlannerModel, encoder: PromptEncoder, variant: PromptVariant, visual: VisualSetting, count: int
) -> list[EncodedPrompt]:
    examples, _ = synthetic_examples(variant, visual, count, seed=3)
    prompts = []
    for example in examples:
        visual_input = None
        if variant.uses_video:
            visual_input = pixels_to_input(example.pixels, planner.geometry, visual.thumbnail)
        messages = chat_messages(example.prompt, visual if variant.uses_video else None)
        prompts.append(encoder.encode_prompt(messages, visual_input))
    return prompts


@pytest.mark.parametrize(
    ("variant", "visual"),
    [
        (PromptVariant.TEXT_ONLY, TWO_FRAMES),
        (PromptVariant.VIDEO_TEXT, VisualSetting(frames=4)),
        (PromptVariant.VIDEO_ONLY, VisualSetting(thumbnail=True)),
        (PromptVariant.VIDEO_COT, TWO_FRAMES),
    ],
)
def test_untrained_model_under_the_grammar_only_outputs_descriptions(
    untrained_planner: PlannerModel,
    encoder: PromptEncoder,
    task: PlanningTask,
    variant: PromptVariant,
    visual: VisualSetting,
) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, variant, max_reasoning_chars=24)
    compiled = compile_grammar(grammar, untrained_planner.tokenizer, untrained_planner.vocab_size)
    prompts = _prompts(untrained_planner, encoder, variant, visual, 6)
    responses = generate_responses(untrained_planner.model, encoder, prompts, grammar.max_new_tokens, compiled)
    answers = [parse_response(variant, response).answer for response in responses]
    assert all(grammar.is_description(answer) for answer in answers), responses
    free = generate_responses(untrained_planner.model, encoder, prompts, 8)
    assert len(free) == len(prompts)  # unconstrained output is anything, typically not a description


def test_scores_equal_the_full_forward_log_likelihood(
    untrained_planner: PlannerModel, encoder: PromptEncoder, task: PlanningTask
) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_ONLY)
    candidates = description_candidates(encoder, grammar)
    prompts = _prompts(untrained_planner, encoder, PromptVariant.VIDEO_ONLY, TWO_FRAMES, 3)
    scores = score_descriptions(untrained_planner.model, encoder, prompts, candidates)
    assert scores.shape == (3, len(candidates))
    for row, column in [(0, 0), (2, 4)]:
        batch = training_batch([prompts[row]], [candidates[column]], encoder.pad_token_id)
        with torch.no_grad():
            logits = untrained_planner.model(**batch.model_inputs("cpu")).logits[0]
        log_probs = torch.log_softmax(logits, dim=-1)
        start = len(prompts[row].input_ids) - 1
        expected = sum(log_probs[start + offset, token].item() for offset, token in enumerate(candidates[column]))
        assert scores[row, column].item() == pytest.approx(expected, abs=1e-3)


def test_restricted_scores_equal_the_unrestricted_ones_and_skip_the_rest(
    untrained_planner: PlannerModel, encoder: PromptEncoder, task: PlanningTask
) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_ONLY)
    candidates = description_candidates(encoder, grammar)
    prompts = _prompts(untrained_planner, encoder, PromptVariant.VIDEO_ONLY, TWO_FRAMES, 3)
    full = score_descriptions(untrained_planner.model, encoder, prompts, candidates)
    allowed = [[4, 1], None, []]
    restricted = score_descriptions(untrained_planner.model, encoder, prompts, candidates, allowed)
    assert torch.allclose(restricted[0, [1, 4]], full[0, [1, 4]], atol=1e-4)
    assert torch.isinf(restricted[0, [0, 2, 3]]).all() and torch.isinf(restricted[2]).all()
    assert torch.allclose(restricted[1], full[1], atol=1e-4)
    with pytest.raises(MllmConfigError, match="outside"):
        score_descriptions(untrained_planner.model, encoder, prompts, candidates, [[len(candidates)], None, None])


def test_ranking_is_distinct_sorted_and_respects_allowed(
    untrained_planner: PlannerModel, encoder: PromptEncoder, task: PlanningTask
) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=16)
    compiled = compile_grammar(grammar, untrained_planner.tokenizer, untrained_planner.vocab_size)
    prompts = _prompts(untrained_planner, encoder, PromptVariant.VIDEO_COT, TWO_FRAMES, 4)
    candidates = description_candidates(encoder, grammar)
    rankings = rank_descriptions(
        untrained_planner.model, encoder, prompts, PromptVariant.VIDEO_COT, candidates, 4, compiled,
        grammar.max_new_tokens, allowed=[None, [1, 2], None, [5]],
    )  # fmt: skip
    assert [len(ranking.indices) for ranking in rankings] == [4, 2, 4, 1]
    for ranking in rankings:
        assert len(set(ranking.indices)) == len(ranking.indices)
        assert ranking.scores == sorted(ranking.scores, reverse=True)
        assert ranking.reasoning is not None
    assert set(rankings[1].indices) == {1, 2} and rankings[3].indices == [5]


def test_cot_ranking_is_the_same_under_the_reasoning_only_grammar(
    untrained_planner: PlannerModel, encoder: PromptEncoder, task: PlanningTask
) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=16)
    prompts = _prompts(untrained_planner, encoder, PromptVariant.VIDEO_COT, TWO_FRAMES, 3)
    candidates = description_candidates(encoder, grammar)
    rankings = {}
    for reasoning_only in (False, True):
        compiled = compile_grammar(grammar, untrained_planner.tokenizer, untrained_planner.vocab_size, reasoning_only)
        budget = grammar.reasoning_max_new_tokens if reasoning_only else grammar.max_new_tokens
        rankings[reasoning_only] = rank_descriptions(
            untrained_planner.model, encoder, prompts, PromptVariant.VIDEO_COT, candidates, 3, compiled, budget,
            allowed=[None, [0, 3], [2]],
        )  # fmt: skip
    for full, short in zip(rankings[False], rankings[True], strict=True):
        assert full.indices == short.indices and full.reasoning == short.reasoning and full.reasoning
        assert full.scores == pytest.approx(short.scores, abs=1e-5)
    with pytest.raises(MllmConfigError, match="did not reach"):
        rank_descriptions(
            untrained_planner.model, encoder, prompts, PromptVariant.VIDEO_COT, candidates, 3, compiled, 2
        )
