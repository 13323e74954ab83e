"""Planner engines: ``rank_clusters(contexts, n)`` -> per context, the ``n`` best clusters with scores and reasoning.

:class:`PlannerEngine` is the interface every engine implements (the Triton ``mllm`` model and the Ray batch
job call only this). :class:`TorchPlannerEngine` runs transformers on CPU or CUDA: it renders the artifact's
prompt variant, generates the CoT reasoning under the answer grammar, and ranks every allowed description by
log-likelihood (``decoding.rank_descriptions``); description -> cluster id is the grammar's exact lookup.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import torch

from serendip.core.frames import uniform_frame_indices
from serendip.models.mllm.batching import EncodedPrompt, PromptEncoder
from serendip.models.mllm.checkpoint import PlannerModel, load_model, resolve_device
from serendip.models.mllm.collaborative import load_related_keywords
from serendip.models.mllm.contexts import PlanningContext, RankedCluster
from serendip.models.mllm.decoding import description_candidates, rank_descriptions
from serendip.models.mllm.errors import ContextError, MllmConfigError, ModelArtifactError
from serendip.models.mllm.grammar import AnswerGrammar, compile_grammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import chat_messages, prompt_text
from serendip.models.mllm.vision_inputs import pixels_to_input

DEFAULT_BATCH_SIZE = 16


class PlannerEngine(Protocol):
    """Anything that ranks serendipitous clusters for context items."""

    spec: PlannerSpec

    @property
    def descriptions(self) -> dict[str, str]:
        """Cluster id -> description of every cluster the engine can answer."""
        ...

    def rank_clusters(self, contexts: Sequence[PlanningContext], n: int) -> list[list[RankedCluster]]:
        """For each context, up to ``n`` distinct clusters, best (highest score) first."""
        ...


class TorchPlannerEngine:
    """The transformers engine (CPU or CUDA), grammar-constrained with xgrammar."""

    def __init__(
        self,
        planner: PlannerModel,
        grammar: AnswerGrammar,
        spec: PlannerSpec,
        batch_size: int = DEFAULT_BATCH_SIZE,
        related_keywords: Mapping[str, str] | None = None,
    ) -> None:
        if grammar.variant is not spec.variant:
            raise ModelArtifactError(f"grammar is for {grammar.variant} prompts but planner.json says {spec.variant}")
        self.planner = planner
        self.grammar = grammar
        self.spec = spec
        self.batch_size = batch_size
        self.related_keywords = related_keywords or {}
        """video_cot_rag: item id -> the keywords its prompt carries (``collaborative``)."""
        self.encoder = PromptEncoder(planner.tokenizer, planner.model.config)
        # CoT: generate only the reasoning (and the marker), since every allowed description is scored after it.
        self.reasoning_only = spec.variant.is_cot
        self.compiled_grammar = compile_grammar(grammar, planner.tokenizer, planner.vocab_size, self.reasoning_only)
        self.max_new_tokens = grammar.reasoning_max_new_tokens if self.reasoning_only else grammar.max_new_tokens
        self.candidate_tokens = description_candidates(self.encoder, grammar)
        self._index_of = {cluster_id: index for index, cluster_id in enumerate(grammar.cluster_ids)}

    @classmethod
    def from_artifact(
        cls, directory: str | os.PathLike[str], device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE
    ) -> TorchPlannerEngine:
        """Load an MLLM artifact directory (see ``planner_spec``) onto ``device`` ("auto": CUDA if present)."""
        source = Path(directory)
        spec = PlannerSpec.load(source)
        planner = load_model(source / spec.model_dir, device=resolve_device(device))
        return cls(planner, AnswerGrammar.load(source), spec, batch_size, load_related_keywords(source, spec))

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return next(self.planner.model.parameters()).device

    @property
    def descriptions(self) -> dict[str, str]:
        """Cluster id -> description, in grammar order."""
        return dict(zip(self.grammar.cluster_ids, self.grammar.descriptions, strict=True))

    def encode_context(self, context: PlanningContext) -> EncodedPrompt:
        """The prompt of the artifact's variant for one context (pixels resampled to the trained frame count)."""
        variant, visual = self.spec.variant, self.spec.visual
        visual_input = None
        if variant.uses_video:
            if visual is None:
                raise ModelArtifactError(f"planner.json names no frame setting for the {variant} variant")
            if visual.thumbnail:
                if context.thumbnail is None:
                    raise ContextError(f"item {context.item_id!r}: this planner needs the thumbnail")
                pixels = context.thumbnail
            else:
                if context.frames is None or len(context.frames) == 0:
                    raise ContextError(f"item {context.item_id!r}: this planner needs video frames")
                pixels = context.frames[uniform_frame_indices(len(context.frames), visual.frames)]
            try:
                visual_input = pixels_to_input(pixels, self.planner.geometry, visual.thumbnail)
            except MllmConfigError as error:
                raise ContextError(f"item {context.item_id!r}: unusable pixels ({error})") from error
        text = prompt_text(variant, context.title, self.related_keywords.get(context.item_id, ""))
        messages = chat_messages(text, visual if variant.uses_video else None)
        return self.encoder.encode_prompt(messages, visual_input)

    def _allowed(self, context: PlanningContext) -> list[int] | None:
        if context.candidate_cluster_ids is None:
            return None
        unknown = [cluster for cluster in context.candidate_cluster_ids if cluster not in self._index_of]
        if unknown:
            raise ContextError(f"item {context.item_id!r}: unknown candidate clusters {unknown[:5]}")
        return [self._index_of[cluster] for cluster in context.candidate_cluster_ids]

    def rank_clusters(self, contexts: Sequence[PlanningContext], n: int) -> list[list[RankedCluster]]:
        """For each context, up to ``n`` distinct clusters ranked by description log-likelihood (best first)."""
        prompts = [self.encode_context(context) for context in contexts]
        allowed = [self._allowed(context) for context in contexts]
        plans: list[list[RankedCluster]] = []
        for start in range(0, len(prompts), self.batch_size):
            rankings = rank_descriptions(
                self.planner.model,
                self.encoder,
                prompts[start : start + self.batch_size],
                self.spec.variant,
                self.candidate_tokens,
                n,
                self.compiled_grammar,
                self.max_new_tokens,
                allowed[start : start + self.batch_size],
            )
            plans += [
                [
                    RankedCluster(self.grammar.cluster_ids[index], score, ranking.reasoning)
                    for index, score in zip(ranking.indices, ranking.scores, strict=True)
                ]
                for ranking in rankings
            ]
        return plans
