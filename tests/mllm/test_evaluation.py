"""Baselines are exact, deterministic functions of the training labels and the candidates; the model's
candidate-restricted recall ranks exactly as the engine's ``allowed`` restriction does."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.core.prompts import thought_words
from serendip.models.mllm.batching import PromptEncoder
from serendip.models.mllm.checkpoint import PlannerModel
from serendip.models.mllm.decoding import generate_responses, rank_descriptions
from serendip.models.mllm.evaluation import (
    HeldoutEvaluator,
    HeldoutItem,
    plot_curves,
    popularity_baseline,
    random_baseline,
    thought_keyword_recall,
)
from serendip.models.mllm.grammar import build_answer_grammar, compile_grammar
from serendip.models.mllm.prompts import PromptVariant, parse_response
from serendip.models.mllm.training import prepare_examples
from tests.mllm.conftest import TWO_FRAMES
from tests.mllm.synthetic import synthetic_examples

CANDIDATES = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"], "x": ["y", "z", "w"]}


def test_popularity_ranks_candidates_by_training_label_frequency() -> None:
    train_labels = ["c", "c", "b", "y"]
    heldout = [("a", "c"), ("a", "b"), ("b", "c"), ("c", "a"), ("x", "z")]
    result = popularity_baseline(train_labels, heldout, CANDIDATES, ranks=(1, 2))
    # a -> [c, b]: hit, miss@1; b -> [c, a]: hit; c -> [b, a] (a and b tie on... b has 1): miss@1, hit@2; x -> [y, w, z]
    assert result["recall@1"] == pytest.approx(2 / 5)
    assert result["recall@2"] == pytest.approx(4 / 5)
    assert result["recall"] == result["recall@1"]


def test_random_baseline_is_the_exact_expectation() -> None:
    heldout = [("a", "c"), ("x", "z"), ("x", "q")]  # the last label is not a candidate: never hit
    result = random_baseline(heldout, CANDIDATES, ranks=(1, 2))
    assert result["recall@1"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert result["recall@2"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_curves_are_written(tmp_path: Path) -> None:
    records = [{"step": 10, "recall": 0.2}, {"step": 20, "recall": 0.5}]
    plot_curves({"run": records}, "recall", tmp_path / "curve.png", "recall", {"popularity": 0.3})
    assert (tmp_path / "curve.png").stat().st_size > 1000


def _setup(planner: PlannerModel, encoder: PromptEncoder, variant: PromptVariant, count: int) -> tuple:
    """``count`` synthetic examples of ``variant``, prepared for ``planner``, with their grammar, compiled."""
    examples, task = synthetic_examples(variant, TWO_FRAMES, count)
    prepared = prepare_examples(examples, planner, encoder, variant, TWO_FRAMES, progress=False)
    grammar = build_answer_grammar(task.descriptions, 3, variant)
    compiled = compile_grammar(grammar, planner.tokenizer, planner.vocab_size)
    return examples, task, prepared, grammar, compiled


def test_candidate_recall_matches_the_engines_allowed_ranking(
    untrained_planner: PlannerModel, encoder: PromptEncoder
) -> None:
    variant = PromptVariant.TEXT_ONLY
    _, task, prepared, grammar, compiled = _setup(untrained_planner, encoder, variant, 8)
    candidates = [task.serendipitous_candidates[task.context_cluster_of[p.example.context_item_id]] for p in prepared]
    items = [
        HeldoutItem(p.example.context_item_id, p.prompt, p.example.label_cluster_id, tuple(c))
        for p, c in zip(prepared, candidates, strict=True)
    ]
    evaluator = HeldoutEvaluator(encoder, grammar, compiled, items, ranks=(1, 2), batch_size=4)
    metrics = evaluator.evaluate(untrained_planner.model)

    index_of = {cluster: i for i, cluster in enumerate(grammar.cluster_ids)}
    allowed = [[index_of[cluster] for cluster in c] for c in candidates]
    rankings = rank_descriptions(
        untrained_planner.model, encoder, [p.prompt for p in prepared], variant, evaluator.description_tokens, 2,
        compiled, grammar.max_new_tokens, allowed,
    )  # fmt: skip
    top = [grammar.cluster_ids[ranking.indices[0]] for ranking in rankings]
    expected = sum(t == p.example.label_cluster_id for t, p in zip(top, prepared, strict=True)) / len(prepared)
    assert metrics["candidate_count"] == len(prepared)
    assert metrics["candidate_recall@1"] == pytest.approx(expected)
    # every label is a candidate (2 per context): the restricted top 2 always holds it, the unrestricted may not
    assert metrics["candidate_recall@2"] == 1.0
    assert metrics["candidate_recall@1"] >= metrics["recall@1"]
    assert {"recall", "match_rate", "recall@1", "recall@2"} <= metrics.keys()


def test_no_candidates_no_candidate_recall(untrained_planner: PlannerModel, encoder: PromptEncoder) -> None:
    variant = PromptVariant.TEXT_ONLY
    _, _, prepared, grammar, compiled = _setup(untrained_planner, encoder, variant, 2)
    items = [HeldoutItem(p.example.context_item_id, p.prompt, p.example.label_cluster_id) for p in prepared]
    metrics = HeldoutEvaluator(encoder, grammar, compiled, items, ranks=(1,)).evaluate(untrained_planner.model)
    assert "candidate_recall@1" not in metrics and metrics["count"] == 2


def test_thought_keyword_recall_by_hand() -> None:
    taxi, space = frozenset({"taxi", "city"}), frozenset({"galaxy", "empire", "droids", "rebels"})
    pairs = [
        (taxi, "the video shows a taxi at night."),
        (space, "the video shows the Galaxy, the empire."),
        (taxi, None),
    ]
    figures = thought_keyword_recall(pairs)
    assert figures["thought_keyword_recall"] == pytest.approx((1 / 2 + 2 / 4 + 0) / 3)
    # against the next item's words: taxi's thought vs space's words, space's vs taxi's, the empty one vs taxi's
    assert figures["thought_keyword_recall_other"] == pytest.approx(0.0)
    assert thought_keyword_recall([(taxi, "the video shows the taxis")])["thought_keyword_recall"] == 0.0  # words
    assert thought_keyword_recall([]) == {}


def test_thought_keyword_recall_is_reported_for_items_with_thoughts(
    untrained_planner: PlannerModel, encoder: PromptEncoder
) -> None:
    """Reported over the items that carry their own thought, from the thoughts the model generated for them."""
    variant = PromptVariant.VIDEO_COT
    examples, _, prepared, grammar, compiled = _setup(untrained_planner, encoder, variant, 4)
    untrained_planner.model.eval()
    responses = generate_responses(
        untrained_planner.model, encoder, [p.prompt for p in prepared], grammar.max_new_tokens
    )
    own = [thought_words(parse_response(variant, example.target).reasoning or "") for example in examples]
    assert all(own)
    items = [
        HeldoutItem(p.example.context_item_id, p.prompt, p.example.label_cluster_id, thought_words=words)
        for p, words in zip(prepared, own, strict=True)
    ]
    metrics = HeldoutEvaluator(encoder, grammar, compiled, items, ranks=(1,), batch_size=len(items)).evaluate(
        untrained_planner.model
    )
    expected = thought_keyword_recall(
        [(words, parse_response(variant, response).reasoning) for words, response in zip(own, responses, strict=True)]
    )
    assert metrics["thought_keyword_recall"] == pytest.approx(expected["thought_keyword_recall"])
    assert metrics["thought_keyword_recall_other"] == pytest.approx(expected["thought_keyword_recall_other"])
    without = [HeldoutItem(p.example.context_item_id, p.prompt, p.example.label_cluster_id) for p in prepared]
    metrics = HeldoutEvaluator(encoder, grammar, compiled, without, ranks=(1,)).evaluate(untrained_planner.model)
    assert "thought_keyword_recall" not in metrics
