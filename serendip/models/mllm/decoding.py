"""Greedy generation (free or grammar-constrained) and top-n ranking of cluster descriptions by likelihood.

* :func:`generate_responses` -- batched greedy ``generate``; with a compiled grammar, xgrammar's logits
  processor masks every token the grammar forbids, so each response is a complete sentence of the grammar
  (an untrained model included) as long as ``max_new_tokens`` is the grammar's budget.
* :func:`score_descriptions` -- log-likelihood of every candidate description (plus the end-of-turn token)
  after each prefix: one prefix pass with a KV cache, then all candidates at once against the repeated cache.
* :func:`rank_descriptions` -- generate (CoT: the reasoning), then score every allowed description after it
  and keep the ``n`` best: the ranked list the Planner serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import xgrammar.contrib.hf
from transformers import PreTrainedModel

from serendip.models.mllm.batching import EncodedPrompt, ModelBatch, PromptEncoder, inference_batch
from serendip.models.mllm.errors import MllmConfigError
from serendip.models.mllm.grammar import AnswerGrammar
from serendip.models.mllm.prompts import REASONING_END, PromptVariant, answer_lead, parse_response

MAX_SCORING_ROWS = 2048
"""Upper bound on prefix x candidate rows scored in one forward pass (memory: rows x length x vocab floats)."""


def model_device(model: PreTrainedModel) -> torch.device:
    """Device of the model's parameters."""
    return next(model.parameters()).device


@torch.no_grad()
def generate_responses(
    model: PreTrainedModel,
    encoder: PromptEncoder,
    prompts: Sequence[EncodedPrompt],
    max_new_tokens: int,
    compiled_grammar: object | None = None,
) -> list[str]:
    """Greedy responses (special tokens stripped), one per prompt; constrained when a grammar is given."""
    batch = inference_batch(prompts, encoder.pad_token_id)
    inputs = batch.model_inputs(model_device(model))
    processors = [xgrammar.contrib.hf.LogitsProcessor(compiled_grammar)] if compiled_grammar is not None else []
    output = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        logits_processor=processors,
        eos_token_id=encoder.eos_token_id,
        pad_token_id=encoder.pad_token_id,
    )
    generated = output[:, inputs["input_ids"].shape[1] :]
    return encoder.tokenizer.batch_decode(generated, skip_special_tokens=True)


def _qwen_core(model: PreTrainedModel) -> torch.nn.Module:
    """The ``Qwen2VLModel`` inside a (possibly PEFT-wrapped) conditional-generation model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    core = getattr(base, "model", None)
    if core is None or not hasattr(core, "get_rope_index"):
        raise MllmConfigError(f"{type(base).__name__} is not a Qwen2-VL-family model (no get_rope_index)")
    return core


def _prefix_positions(
    model: PreTrainedModel, batch: ModelBatch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE position ids (3, B, L) of a left-padded batch and each row's next text position (B,)."""
    visual = {name: tensor.to(device) for name, tensor in batch.visual_tensors.items()}
    positions, deltas = _qwen_core(model).get_rope_index(
        batch.input_ids.to(device),
        mm_token_type_ids=batch.mm_token_type_ids.to(device),
        image_grid_thw=visual.get("image_grid_thw"),
        video_grid_thw=visual.get("video_grid_thw"),
        attention_mask=batch.attention_mask.to(device),
    )
    next_position = batch.attention_mask.to(device).sum(dim=1) + deltas.reshape(-1).to(device)
    return positions, next_position


@torch.no_grad()
def score_descriptions(
    model: PreTrainedModel,
    encoder: PromptEncoder,
    prefixes: Sequence[EncodedPrompt],
    candidates: Sequence[list[int]],
) -> torch.Tensor:
    """(len(prefixes), len(candidates)) sums of token log-probabilities of each candidate after each prefix.

    ``candidates`` are token ids ending with the end-of-turn token, so a description that is a prefix of
    another is not favoured. Prefixes are processed in groups so that group x candidates <= MAX_SCORING_ROWS.
    """
    if not candidates or any(not candidate for candidate in candidates):
        raise MllmConfigError("score_descriptions needs non-empty candidate token lists")
    device = model_device(model)
    width = max(len(candidate) for candidate in candidates)
    candidate_ids = torch.full((len(candidates), width), encoder.pad_token_id, dtype=torch.long, device=device)
    candidate_mask = torch.zeros((len(candidates), width), dtype=torch.long, device=device)
    for row, candidate in enumerate(candidates):
        candidate_ids[row, : len(candidate)] = torch.tensor(candidate, device=device)
        candidate_mask[row, : len(candidate)] = 1
    group_size = max(1, MAX_SCORING_ROWS // len(candidates))
    scores = [
        _score_group(model, encoder, prefixes[start : start + group_size], candidate_ids, candidate_mask, device)
        for start in range(0, len(prefixes), group_size)
    ]
    return torch.cat(scores).cpu()


def _score_group(
    model: PreTrainedModel,
    encoder: PromptEncoder,
    prefixes: Sequence[EncodedPrompt],
    candidate_ids: torch.Tensor,
    candidate_mask: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    batch = inference_batch(prefixes, encoder.pad_token_id)
    positions, next_position = _prefix_positions(model, batch, device)
    prefix_inputs = batch.model_inputs(device)
    prefix_inputs.pop("mm_token_type_ids")
    prefix_output = model(**prefix_inputs, position_ids=positions, use_cache=True)
    first_log_probs = torch.log_softmax(prefix_output.logits[:, -1].float(), dim=-1)  # (B, V)
    cache = prefix_output.past_key_values
    num_prefixes, (num_candidates, width) = len(prefixes), candidate_ids.shape
    cache.batch_repeat_interleave(num_candidates)
    rows_ids = candidate_ids.repeat(num_prefixes, 1)
    rows_mask = candidate_mask.repeat(num_prefixes, 1)
    attention_mask = torch.cat([prefix_inputs["attention_mask"].repeat_interleave(num_candidates, 0), rows_mask], 1)
    text_positions = next_position.repeat_interleave(num_candidates)[:, None] + torch.arange(width, device=device)
    output = model(
        input_ids=rows_ids,
        attention_mask=attention_mask,
        position_ids=text_positions[None].expand(3, -1, -1),
        past_key_values=cache,
        use_cache=False,
    )
    log_probs = torch.log_softmax(output.logits[:, :-1].float(), dim=-1)  # predicts tokens 1..width-1
    first = first_log_probs.repeat_interleave(num_candidates, 0).gather(1, rows_ids[:, :1])
    rest = log_probs.gather(2, rows_ids[:, 1:, None]).squeeze(2)
    token_log_probs = torch.cat([first, rest], dim=1) * rows_mask
    return token_log_probs.sum(dim=1).reshape(num_prefixes, num_candidates)


def description_candidates(encoder: PromptEncoder, grammar: AnswerGrammar) -> list[list[int]]:
    """Answer tokens of every grammar description as the model emits them (lead text and end-of-turn included)."""
    lead = answer_lead(grammar.variant)
    return [encoder.encode_response(lead + description) for description in grammar.descriptions]


@dataclass(frozen=True)
class RankedDescriptions:
    """One context's ranking: description indices best first, their log-likelihoods, and the CoT reasoning."""

    indices: list[int]
    scores: list[float]
    reasoning: str | None


def rank_descriptions(
    model: PreTrainedModel,
    encoder: PromptEncoder,
    prompts: Sequence[EncodedPrompt],
    variant: PromptVariant,
    description_token_ids: Sequence[list[int]],
    n: int,
    compiled_grammar: object | None,
    max_new_tokens: int,
    allowed: Sequence[Sequence[int] | None] | None = None,
) -> list[RankedDescriptions]:
    """Top-``n`` descriptions per prompt by log-likelihood (after the grammar-constrained CoT reasoning).

    ``description_token_ids[i]`` are the answer tokens of description ``i`` (end-of-turn included);
    ``allowed[p]`` optionally restricts prompt ``p`` to some description indices (e.g. serendipitous siblings).
    """
    if n < 1:
        raise MllmConfigError(f"n must be >= 1, got {n}")
    prefixes = list(prompts)
    reasonings: list[str | None] = [None] * len(prompts)
    if variant.is_cot:
        responses = generate_responses(model, encoder, prompts, max_new_tokens, compiled_grammar)
        for index, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
            reasoning = parse_response(variant, response).reasoning or ""
            reasonings[index] = reasoning
            continuation = encoder.encode_text(reasoning + REASONING_END)
            prefixes[index] = EncodedPrompt(
                prompt.input_ids + continuation, prompt.mm_token_type_ids + [0] * len(continuation), prompt.visual
            )
    scores = score_descriptions(model, encoder, prefixes, description_token_ids)
    if allowed is not None:
        if len(allowed) != len(prompts):
            raise MllmConfigError(f"allowed has {len(allowed)} entries for {len(prompts)} prompts")
        for row, indices in enumerate(allowed):
            if indices is not None:
                keep = torch.zeros(scores.shape[1], dtype=torch.bool)
                keep[list(indices)] = True
                scores[row, ~keep] = float("-inf")
    rankings = []
    for row, reasoning in enumerate(reasonings):
        available = int(torch.isfinite(scores[row]).sum())
        top = torch.topk(scores[row], k=min(n, available))
        rankings.append(RankedDescriptions(top.indices.tolist(), top.values.tolist(), reasoning))
    return rankings
