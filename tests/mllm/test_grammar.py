"""The answer grammar: one EBNF file accepting exactly the descriptions (after the optional CoT reasoning)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.models.mllm.checkpoint import PlannerModel
from serendip.models.mllm.errors import GrammarError, MllmConfigError
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import (
    GRAMMAR_FILE,
    AnswerGrammar,
    build_answer_grammar,
    compile_grammar,
    ebnf_literal,
    grammar_accepts,
)
from serendip.models.mllm.prompts import PromptVariant, VisualSetting, parse_response, target_text


def _accepts(planner: PlannerModel, grammar: AnswerGrammar, text: str, reasoning_only: bool = False) -> bool:
    compiled = compile_grammar(grammar, planner.tokenizer, planner.vocab_size, reasoning_only)
    token_ids = planner.tokenizer(text, add_special_tokens=False).input_ids
    return grammar_accepts(compiled, token_ids, planner.tokenizer.convert_tokens_to_ids(planner.tokenizer.eos_token))


def test_grammar_file_round_trips_and_accepts_exactly_the_descriptions(
    tmp_path: Path, untrained_planner: PlannerModel, task: PlanningTask
) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_ONLY)
    grammar.save(tmp_path)
    loaded = AnswerGrammar.load(tmp_path)
    assert (tmp_path / GRAMMAR_FILE).read_text() == grammar.ebnf == loaded.ebnf
    assert loaded.cluster_ids == grammar.cluster_ids and loaded.descriptions == grammar.descriptions
    for cluster_id, description in task.descriptions.items():
        assert loaded.cluster_for(description) == cluster_id
        assert _accepts(untrained_planner, loaded, description), description
    for wrong in ["quiet", "quiet knitting!", "Surfing", "surfing ", "", "sushi", "coral reef"]:
        assert not _accepts(untrained_planner, loaded, wrong), wrong


def test_cot_grammar_needs_reasoning_then_the_marker(untrained_planner: PlannerModel, task: PlanningTask) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=60)
    for description in task.descriptions.values():
        assert _accepts(untrained_planner, grammar, target_text(PromptVariant.VIDEO_COT, description, "a red block"))
    assert not _accepts(untrained_planner, grammar, "surfing")
    assert not _accepts(untrained_planner, grammar, target_text(PromptVariant.VIDEO_COT, "sushi", "a red block"))
    assert not _accepts(untrained_planner, grammar, "the <|im_start|> video\ncluster: surfing")
    assert not _accepts(untrained_planner, grammar, target_text(PromptVariant.VIDEO_COT, "surfing", "x" * 80))


def test_reasoning_grammar_stops_after_the_marker(untrained_planner: PlannerModel, task: PlanningTask) -> None:
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=60)
    assert _accepts(untrained_planner, grammar, "a red block\ncluster:", reasoning_only=True)
    description = next(iter(task.descriptions.values()))
    full_answer = target_text(PromptVariant.VIDEO_COT, description, "a red block")
    assert not _accepts(untrained_planner, grammar, full_answer, reasoning_only=True)
    assert not _accepts(untrained_planner, grammar, "\ncluster:", reasoning_only=True)
    assert grammar.reasoning_max_new_tokens == 60 + len("\ncluster:") + 1
    with pytest.raises(GrammarError, match="no reasoning"):
        _ = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_ONLY).reasoning_ebnf


def test_literals_escape_quotes_and_errors_name_the_problem(task: PlanningTask) -> None:
    assert ebnf_literal('coral "reef"\\') == '"coral \\"reef\\"\\\\"'
    with pytest.raises(GrammarError, match="used by both"):
        build_answer_grammar({"a": "surfing", "b": "surfing"}, 3, PromptVariant.VIDEO_ONLY)
    with pytest.raises(GrammarError, match="not one line"):
        build_answer_grammar({"a": "two\nlines"}, 3, PromptVariant.VIDEO_ONLY)
    grammar = build_answer_grammar(task.descriptions, 3, PromptVariant.TEXT_ONLY)
    with pytest.raises(GrammarError, match="not one of the 6"):
        grammar.cluster_for("sushi")
    with pytest.raises(GrammarError, match="no answer grammar"):
        AnswerGrammar.load(Path("/nonexistent"))


def test_budget_covers_one_token_per_byte(task: PlanningTask) -> None:
    direct = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_TEXT)
    cot = build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=50)
    longest = max(len(text.encode()) for text in task.descriptions.values())
    assert direct.max_new_tokens == longest + 1
    assert cot.max_new_tokens == 50 + len("\ncluster: ") + longest + 1


def test_responses_split_into_reasoning_and_answer() -> None:
    cot = target_text(PromptVariant.VIDEO_COT, "tea time", "a red block")
    assert parse_response(PromptVariant.VIDEO_COT, cot).answer == "tea time"
    assert parse_response(PromptVariant.VIDEO_COT, cot).reasoning == "the video shows a red block."
    assert parse_response(PromptVariant.VIDEO_COT, "no marker").answer == ""
    assert parse_response(PromptVariant.VIDEO_ONLY, " surfing ").answer == "surfing"
    assert VisualSetting.parse("thumbnail").thumbnail and VisualSetting.parse("8").frames == 8
    with pytest.raises(MllmConfigError, match="thumbnail"):
        VisualSetting.parse("frames")
