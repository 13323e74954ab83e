"""Offline metrics of the planner MLLM on held-out context items (paper §3.1), baselines, and curves.

* match rate -- share of *unconstrained* greedy outputs that are exactly some cluster description;
* recall     -- share of unconstrained outputs that are exactly the label description;
* recall@n   -- share of contexts whose label is among the ``n`` best descriptions ranked by likelihood
  (grammar-constrained, over every description of the planning level);
* candidate_recall@n -- the same ranking restricted to the context's serendipitous candidates (the
  siblings the baselines pick among and serving restricts the MLLM to, ``allowed`` of
  ``rank_descriptions``): the model on the same footing as the baselines. Computed from the one full
  ranking (masking other descriptions does not reorder the allowed ones), over the items that have
  candidates;
* baselines  -- ``popularity``: the serendipitous candidates of the context (siblings under its level-(l-δ)
  parent) ordered by how often each was a label in the training set; ``random``: a uniformly random
  candidate (its expected recall@n, ``min(n, k) / k``, computed exactly).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel

from serendip.core.prompts import thought_words
from serendip.models.mllm.batching import EncodedPrompt, PromptEncoder
from serendip.models.mllm.decoding import description_candidates, generate_responses, rank_descriptions
from serendip.models.mllm.grammar import AnswerGrammar
from serendip.models.mllm.prompts import PromptVariant, parse_response

DEFAULT_RANKS = (1, 3, 5)


@dataclass(frozen=True)
class HeldoutItem:
    """One held-out context: its encoded prompt, the label cluster and the context's serendipitous candidates."""

    context_item_id: str
    prompt: EncodedPrompt
    label_cluster_id: str
    candidate_cluster_ids: tuple[str, ...] = ()
    """The clusters the baselines pick among (empty: no candidate-restricted recall for this item)."""
    thought_words: frozenset[str] = frozenset()
    """Content words of the item's own chain-of-thought target (empty for variants without one)."""


class HeldoutEvaluator:
    """Computes match rate, recall and recall@n of a model on fixed held-out prompts."""

    def __init__(
        self,
        encoder: PromptEncoder,
        grammar: AnswerGrammar,
        compiled_grammar: object,
        items: Sequence[HeldoutItem],
        ranks: Sequence[int] = DEFAULT_RANKS,
        batch_size: int = 32,
    ) -> None:
        self.encoder = encoder
        self.grammar = grammar
        self.compiled_grammar = compiled_grammar
        self.items = list(items)
        self.ranks = tuple(sorted(ranks))
        self.batch_size = batch_size
        self.description_tokens = description_candidates(encoder, grammar)

    @property
    def variant(self) -> PromptVariant:
        """Prompt variant the grammar (and the model) use."""
        return self.grammar.variant

    def evaluate(self, model: PreTrainedModel) -> dict[str, Any]:
        """Metrics over all held-out items (model left in eval mode; caller restores train mode)."""
        model.eval()
        matches = hits = constrained_count = 0
        thoughts: list[tuple[frozenset[str], str | None]] = []
        hits_at = dict.fromkeys(self.ranks, 0)
        constrained_hits_at = dict.fromkeys(self.ranks, 0)
        constrained = any(item.candidate_cluster_ids for item in self.items)
        depth = len(self.description_tokens) if constrained else max(self.ranks)
        for start in range(0, len(self.items), self.batch_size):
            chunk = self.items[start : start + self.batch_size]
            prompts = [item.prompt for item in chunk]
            responses = generate_responses(model, self.encoder, prompts, self.grammar.max_new_tokens)
            rankings = rank_descriptions(
                model, self.encoder, prompts, self.variant, self.description_tokens, depth,
                self.compiled_grammar, self.grammar.max_new_tokens,
            )  # fmt: skip
            for item, response, ranking in zip(chunk, responses, rankings, strict=True):
                parsed = parse_response(self.variant, response)
                answer = parsed.answer
                if item.thought_words:
                    thoughts.append((item.thought_words, parsed.reasoning))
                matches += self.grammar.is_description(answer)
                hits += (
                    self.grammar.is_description(answer) and self.grammar.cluster_for(answer) == item.label_cluster_id
                )
                ranked_ids = [self.grammar.cluster_ids[index] for index in ranking.indices]
                for n in self.ranks:
                    hits_at[n] += item.label_cluster_id in ranked_ids[:n]
                if item.candidate_cluster_ids:
                    allowed = set(item.candidate_cluster_ids)
                    ranked_candidates = [cluster for cluster in ranked_ids if cluster in allowed]
                    constrained_count += 1
                    for n in self.ranks:
                        constrained_hits_at[n] += item.label_cluster_id in ranked_candidates[:n]
        count = max(1, len(self.items))
        metrics: dict[str, Any] = {"count": len(self.items), "match_rate": matches / count, "recall": hits / count}
        metrics.update({f"recall@{n}": hits_at[n] / count for n in self.ranks})
        metrics.update(thought_keyword_recall(thoughts))
        if constrained_count:
            metrics["candidate_count"] = constrained_count
            metrics.update({f"candidate_recall@{n}": constrained_hits_at[n] / constrained_count for n in self.ranks})
        return metrics


def thought_keyword_recall(thoughts: Sequence[tuple[frozenset[str], str | None]]) -> dict[str, float]:
    """How much of each item's own thought a generated thought names, over (own thought words, generated reasoning)
    pairs: ``thought_keyword_recall``, the mean share of the item's own content words in its generated thought
    (``serendip.core.prompts.thought_words``), and ``thought_keyword_recall_other``, the same share measured against
    the next item's own words (the pairs shifted by one): what a thought that fits any item scores. Empty for no
    pairs."""
    if not thoughts:
        return {}
    generated = [thought_words(reasoning or "") for _, reasoning in thoughts]
    own = [words for words, _ in thoughts]

    def mean_recall(targets: list[frozenset[str]]) -> float:
        return sum(len(words & said) / len(words) for words, said in zip(targets, generated, strict=True)) / len(own)

    return {"thought_keyword_recall": mean_recall(own), "thought_keyword_recall_other": mean_recall(own[1:] + own[:1])}


def popularity_baseline(
    train_labels: Sequence[str],
    heldout: Sequence[tuple[str, str]],
    candidates_of: Mapping[str, Sequence[str]],
    ranks: Sequence[int] = DEFAULT_RANKS,
) -> dict[str, float]:
    """Recall@n of ranking each context's serendipitous candidates by training-label frequency.

    ``heldout`` holds (context cluster id, label cluster id) pairs; ``candidates_of[context cluster]`` lists its
    serendipitous candidates. Ties break by cluster id, so the baseline is deterministic.
    """
    frequency = Counter(train_labels)
    hits_at = dict.fromkeys(ranks, 0)
    for context_cluster, label in heldout:
        ordered = sorted(candidates_of[context_cluster], key=lambda cluster: (-frequency[cluster], cluster))
        for n in ranks:
            hits_at[n] += label in ordered[:n]
    return _with_recall({n: hits / max(1, len(heldout)) for n, hits in hits_at.items()})


def random_baseline(
    heldout: Sequence[tuple[str, str]],
    candidates_of: Mapping[str, Sequence[str]],
    ranks: Sequence[int] = DEFAULT_RANKS,
) -> dict[str, float]:
    """Expected recall@n of picking uniformly among each context's serendipitous candidates (exact, no draws)."""
    totals = dict.fromkeys(ranks, 0.0)
    for context_cluster, label in heldout:
        candidates = candidates_of[context_cluster]
        if label in candidates:
            for n in ranks:
                totals[n] += min(n, len(candidates)) / len(candidates)
    return _with_recall({n: total / max(1, len(heldout)) for n, total in totals.items()})


def _with_recall(recall_at: Mapping[int, float]) -> dict[str, float]:
    """``recall@n`` entries plus ``recall`` (= recall@1: a baseline's single answer is its top-ranked one)."""
    return {"recall": recall_at.get(1, float("nan"))} | {f"recall@{n}": value for n, value in recall_at.items()}


def plot_curves(
    series: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    path: str | os.PathLike[str],
    title: str,
    baselines: Mapping[str, float] | None = None,
) -> None:
    """One PNG: ``metric`` vs training step for each named run (eval records), baselines as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for name, records in series.items():
        points = [(record["step"], record[metric]) for record in records if metric in record]
        if points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, marker="o", markersize=3, label=name)
    for (name, value), style in zip((baselines or {}).items(), ("--", ":", "-.", (0, (5, 5))), strict=False):
        axis.axhline(value, linestyle=style, linewidth=1.2, color="grey", label=name)
    axis.set_xlabel("training step")
    axis.set_ylabel(metric)
    axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
