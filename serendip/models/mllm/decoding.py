"""Greedy generation (free or grammar-constrained) and top-n ranking of cluster descriptions by likelihood.

* :func:`generate_responses` -- batched greedy ``generate``; with a compiled grammar, xgrammar's logits
  processor masks every token the grammar forbids, so each response is a complete sentence of the grammar
  (an untrained model included) as long as ``max_new_tokens`` is the grammar's budget.
* :func:`score_descriptions` -- log-likelihood of each candidate description (plus the end-of-turn token)
  after each prefix: one prefix pass with a KV cache, then every (prefix, allowed candidate) row at once
  against the cache, each row reading its own prefix's keys and values.
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
    allowed: Sequence[Sequence[int] | None] | None = None,
) -> torch.Tensor:
    """(len(prefixes), len(candidates)) sums of token log-probabilities of each candidate after each prefix.

    ``candidates`` are token ids ending with the end-of-turn token, so a description that is a prefix of
    another is not favoured. ``allowed[p]`` (optional) limits prefix ``p`` to some candidate indices: only
    those are computed, the others are ``-inf``, so a batch costs what its allowed candidates cost. Prefixes
    are processed in groups of at most MAX_SCORING_ROWS (prefix, candidate) rows.
    """
    if not candidates or any(not candidate for candidate in candidates):
        raise MllmConfigError("score_descriptions needs non-empty candidate token lists")
    rows_of = _candidate_rows(len(prefixes), len(candidates), allowed)
    device = model_device(model)
    width = max(len(candidate) for candidate in candidates)
    candidate_ids = torch.full((len(candidates), width), encoder.pad_token_id, dtype=torch.long, device=device)
    candidate_mask = torch.zeros((len(candidates), width), dtype=torch.long, device=device)
    for row, candidate in enumerate(candidates):
        candidate_ids[row, : len(candidate)] = torch.tensor(candidate, device=device)
        candidate_mask[row, : len(candidate)] = 1
    scores = torch.full((len(prefixes), len(candidates)), float("-inf"))
    for group in _row_groups(rows_of):
        prefix_rows = torch.tensor([slot for slot, p in enumerate(group) for _ in rows_of[p]], dtype=torch.long)
        candidate_rows = torch.tensor([c for p in group for c in rows_of[p]], dtype=torch.long)
        rows_mask = candidate_mask[candidate_rows]
        used = int(rows_mask.sum(dim=1).max())  # the group's longest candidate: no all-padding columns
        group_scores = _score_group(
            model, encoder, [prefixes[p] for p in group], prefix_rows.to(device),
            candidate_ids[candidate_rows, :used], rows_mask[:, :used], device,
        )  # fmt: skip
        scores[torch.tensor(group)[prefix_rows], candidate_rows] = group_scores.cpu()
    return scores


def _candidate_rows(
    num_prefixes: int, num_candidates: int, allowed: Sequence[Sequence[int] | None] | None
) -> list[list[int]]:
    """Per prefix, the candidate indices to score (all of them where nothing restricts it)."""
    if allowed is None:
        return [list(range(num_candidates))] * num_prefixes
    if len(allowed) != num_prefixes:
        raise MllmConfigError(f"allowed has {len(allowed)} entries for {num_prefixes} prompts")
    rows = [list(range(num_candidates)) if indices is None else sorted(set(indices)) for indices in allowed]
    bad = [index for indices in rows for index in indices if not 0 <= index < num_candidates]
    if bad:
        raise MllmConfigError(f"allowed candidate indices {bad[:5]} outside 0..{num_candidates - 1}")
    return rows


def _row_groups(rows_of: Sequence[list[int]]) -> list[list[int]]:
    """Consecutive prefixes with rows to score, grouped so a group holds <= MAX_SCORING_ROWS rows (or one prefix)."""
    groups: list[list[int]] = []
    current: list[int] = []
    current_rows = 0
    for prefix, rows in enumerate(rows_of):
        if not rows:
            continue
        if current and current_rows + len(rows) > MAX_SCORING_ROWS:
            groups.append(current)
            current, current_rows = [], 0
        current.append(prefix)
        current_rows += len(rows)
    return [*groups, current] if current else groups


def _score_group(
    model: PreTrainedModel,
    encoder: PromptEncoder,
    prefixes: Sequence[EncodedPrompt],
    prefix_rows: torch.Tensor,
    rows_ids: torch.Tensor,
    rows_mask: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """Log-likelihood of row ``r``'s candidate tokens after prefix ``prefix_rows[r]``: one prefix pass, one row pass."""
    batch = inference_batch(prefixes, encoder.pad_token_id)
    positions, next_position = _prefix_positions(model, batch, device)
    prefix_inputs = batch.model_inputs(device)
    prefix_inputs.pop("mm_token_type_ids")
    prefix_output = model(**prefix_inputs, position_ids=positions, use_cache=True)
    first_log_probs = torch.log_softmax(prefix_output.logits[:, -1].float(), dim=-1)  # (B, V)
    cache = prefix_output.past_key_values
    cache.reorder_cache(prefix_rows)  # one copy of its prefix's keys and values per row
    width = rows_ids.shape[1]
    attention_mask = torch.cat([prefix_inputs["attention_mask"][prefix_rows], rows_mask], 1)
    text_positions = next_position[prefix_rows][:, None] + torch.arange(width, device=device)
    output = model(
        input_ids=rows_ids,
        attention_mask=attention_mask,
        position_ids=text_positions[None].expand(3, -1, -1),
        past_key_values=cache,
        use_cache=False,
    )
    log_probs = torch.log_softmax(output.logits[:, :-1].float(), dim=-1)  # predicts tokens 1..width-1
    first = first_log_probs[prefix_rows].gather(1, rows_ids[:, :1])
    rest = log_probs.gather(2, rows_ids[:, 1:, None]).squeeze(2)
    token_log_probs = torch.cat([first, rest], dim=1) * rows_mask
    return token_log_probs.sum(dim=1)


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
    scores = score_descriptions(model, encoder, prefixes, description_token_ids, allowed)
    rankings = []
    for row, reasoning in enumerate(reasonings):
        available = int(torch.isfinite(scores[row]).sum())
        top = torch.topk(scores[row], k=min(n, available))
        rankings.append(RankedDescriptions(top.indices.tolist(), top.values.tolist(), reasoning))
    return rankings
