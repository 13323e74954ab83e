"""TensorRT-LLM planner engine: the same ``PlannerEngine`` interface on NVIDIA's LLM API.

Needs the NGC ``tritonserver:<ver>-trtllm-python-py3`` image (TensorRT-LLM >= 1.2, PyTorch backend, a
GPU). It cannot be installed on the CPU machines this project is developed on, so this module is
written against TensorRT-LLM's documented LLM API and is exercised here only up to the import check;
``build_engines`` validates everything around it (configs, grammar, artifact layout).

How it plans: one guided-decoding request per context, constrained by the artifact's own
``grammar.ebnf`` (xgrammar, the backend TensorRT-LLM uses), with beam search of width ``n`` so the
``n`` best distinct descriptions come back with cumulative log-probabilities as scores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serendip.core.frames import uniform_frame_indices
from serendip.models.mllm.collaborative import load_related_keywords
from serendip.models.mllm.contexts import PlanningContext, RankedCluster
from serendip.models.mllm.errors import ContextError, GrammarError
from serendip.models.mllm.grammar import AnswerGrammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import chat_messages, parse_response, prompt_text

NGC_IMAGE_HINT = "use the NGC tritonserver:<version>-trtllm-python-py3 image on a GPU node"


class TensorRTLLMUnavailableError(RuntimeError):
    """tensorrt_llm cannot be imported here."""


def import_tensorrt_llm() -> Any:
    """The ``tensorrt_llm`` module, or a clear error saying where it runs."""
    try:
        import tensorrt_llm
    except ImportError as error:
        raise TensorRTLLMUnavailableError(f"tensorrt_llm is not installed: {NGC_IMAGE_HINT}") from error
    return tensorrt_llm


class TensorRTLLMPlannerEngine:
    """Ranks clusters with ``tensorrt_llm.LLM`` under the artifact's answer grammar."""

    def __init__(self, directory: str | os.PathLike[str], max_clusters: int = 8) -> None:
        trtllm = import_tensorrt_llm()
        from tensorrt_llm.llmapi import GuidedDecodingParams

        source = Path(directory)
        self.spec = PlannerSpec.load(source)
        self.grammar = AnswerGrammar.load(source)
        self.related_keywords = load_related_keywords(source, self.spec)
        self._guided = GuidedDecodingParams(grammar=self.grammar.ebnf)
        self._sampling_params = trtllm.SamplingParams
        self.llm = trtllm.LLM(
            model=str(source / self.spec.model_dir),
            guided_decoding_backend="xgrammar",
            max_beam_width=max_clusters,
            disable_overlap_scheduler=True,
        )

    @property
    def descriptions(self) -> dict[str, str]:
        """Cluster id -> description, in grammar order."""
        return dict(zip(self.grammar.cluster_ids, self.grammar.descriptions, strict=True))

    def _request(self, context: PlanningContext) -> dict[str, Any]:
        variant, visual = self.spec.variant, self.spec.visual
        text = prompt_text(variant, context.title, self.related_keywords.get(context.item_id, ""))
        messages = chat_messages(text, visual if variant.uses_video else None)
        prompt = self.llm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not variant.uses_video or visual is None:
            return {"prompt": prompt}
        if visual.thumbnail:
            if context.thumbnail is None:
                raise ContextError(f"item {context.item_id!r}: this planner needs the thumbnail")
            return {"prompt": prompt, "multi_modal_data": {"image": [context.thumbnail]}}
        if context.frames is None or len(context.frames) == 0:
            raise ContextError(f"item {context.item_id!r}: this planner needs video frames")
        frames = context.frames[uniform_frame_indices(len(context.frames), visual.frames)]
        return {"prompt": prompt, "multi_modal_data": {"video": [list(frames)]}}

    def rank_clusters(self, contexts: Sequence[PlanningContext], n: int) -> list[list[RankedCluster]]:
        """For each context, up to ``n`` distinct clusters by cumulative log-probability (best first)."""
        params = self._sampling_params(
            max_tokens=self.grammar.max_new_tokens,
            n=n,
            best_of=n,
            use_beam_search=n > 1,
            guided_decoding=self._guided,
        )
        outputs = self.llm.generate([self._request(context) for context in contexts], params)
        plans = []
        for context, output in zip(contexts, outputs, strict=True):
            allowed = set(context.candidate_cluster_ids or self.grammar.cluster_ids)
            ranked: dict[str, RankedCluster] = {}
            for completion in output.outputs:
                parsed = parse_response(self.spec.variant, completion.text)
                try:
                    cluster_id = self.grammar.cluster_for(parsed.answer)
                except GrammarError:
                    continue
                if cluster_id in allowed and cluster_id not in ranked:
                    ranked[cluster_id] = RankedCluster(
                        cluster_id, float(completion.cumulative_logprob), parsed.reasoning
                    )
            plans.append(sorted(ranked.values(), key=lambda cluster: -cluster.score)[:n])
        return plans
