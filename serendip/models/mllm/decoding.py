"""Greedy generation (free or grammar-constrained) and top-n ranking of cluster descriptions by likelihood.

* :func:`generate_responses` -- batched greedy ``generate``; with a compiled grammar, xgrammar's logits
  processor masks every token the grammar forbids, so each response is a complete sentence of the grammar
  (an untrained model included) as long as ``max_new_tokens`` is the grammar's budget.
* :func:`score_descriptions` -- log-likelihood of each candidate description (plus the end-of-turn token)
  after each prefix: one prefix pass with a KV cache, then every (prefix, allowed candidate) row at once
  against the cache, each row reading its own prefix's keys and values.
* :func:`rank_descriptions` -- CoT: greedy reasoning under the grammar, each row stopping at the answer marker;
  then every allowed description is scored after it from the same KV cache (the prompt is encoded once). The
  ``n`` best per prompt are the ranked list the Planner serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import xgrammar
import xgrammar.contrib.hf
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache

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
    are encoded in groups of at most MAX_SCORING_ROWS (prefix, candidate) rows.
    """
    table = _CandidateTable.build(encoder, candidates, model_device(model))
    rows_of = _candidate_rows(len(prefixes), len(candidates), allowed)
    scores = torch.full((len(prefixes), len(candidates)), float("-inf"))
    for group in _row_groups(rows_of):
        state = _prefix_state(model, encoder, [prefixes[p] for p in group], table.ids.device)
        _fill_scores(scores, model, state, group, rows_of, table)
    return scores


@dataclass(frozen=True)
class _CandidateTable:
    """Candidate token ids right-padded to one width (C, W), and their mask."""

    ids: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, encoder: PromptEncoder, candidates: Sequence[list[int]], device: torch.device) -> _CandidateTable:
        if not candidates or any(not candidate for candidate in candidates):
            raise MllmConfigError("scoring needs non-empty candidate token lists")
        width = max(len(candidate) for candidate in candidates)
        ids = torch.full((len(candidates), width), encoder.pad_token_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(candidates), width), dtype=torch.long, device=device)
        for row, candidate in enumerate(candidates):
            ids[row, : len(candidate)] = torch.tensor(candidate, device=device)
            mask[row, : len(candidate)] = 1
        return cls(ids, mask)


def _fill_scores(
    scores: torch.Tensor,
    model: PreTrainedModel,
    state: PrefixState,
    prefixes: Sequence[int],
    rows_of: Sequence[list[int]],
    table: _CandidateTable,
) -> None:
    """Write into ``scores`` every allowed candidate of ``prefixes`` (state row ``i`` is prefix ``prefixes[i]``)."""
    pairs = [(slot, candidate) for slot, prefix in enumerate(prefixes) for candidate in rows_of[prefix]]
    for start in range(0, len(pairs), MAX_SCORING_ROWS):
        chunk = pairs[start : start + MAX_SCORING_ROWS]
        slots = torch.tensor([slot for slot, _ in chunk], dtype=torch.long)
        candidate_rows = torch.tensor([candidate for _, candidate in chunk], dtype=torch.long)
        rows_mask = table.mask[candidate_rows]
        used = int(rows_mask.sum(dim=1).max())  # the chunk's longest candidate: no all-padding columns
        chunk_scores = _score_rows(
            model, state, slots.to(table.ids.device), table.ids[candidate_rows, :used], rows_mask[:, :used]
        )
        scores[torch.tensor(prefixes, dtype=torch.long)[slots], candidate_rows] = chunk_scores.cpu()


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


@dataclass
class PrefixState:
    """What scoring continues from: the KV cache of a batch of prefixes and, per row, which cached columns are its
    prefix (``mask``), the M-RoPE position of its next token and its next-token log-probabilities (B, V)."""

    cache: Cache
    mask: torch.Tensor
    next_position: torch.Tensor
    next_log_probs: torch.Tensor


def _prefix_state(
    model: PreTrainedModel, encoder: PromptEncoder, prefixes: Sequence[EncodedPrompt], device: torch.device
) -> PrefixState:
    """One forward pass over a left-padded batch of prefixes."""
    batch = inference_batch(prefixes, encoder.pad_token_id)
    positions, next_position = _prefix_positions(model, batch, device)
    prefix_inputs = batch.model_inputs(device)
    prefix_inputs.pop("mm_token_type_ids")
    output = model(**prefix_inputs, position_ids=positions, use_cache=True, logits_to_keep=1)
    next_log_probs = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
    return PrefixState(output.past_key_values, prefix_inputs["attention_mask"], next_position, next_log_probs)


def _score_rows(
    model: PreTrainedModel,
    state: PrefixState,
    prefix_rows: torch.Tensor,
    rows_ids: torch.Tensor,
    rows_mask: torch.Tensor,
) -> torch.Tensor:
    """Log-likelihood of row ``r``'s candidate tokens after state row ``prefix_rows[r]`` (one forward pass)."""
    device = rows_ids.device
    # Each row reads a copy of its prefix's keys and values; the state's own cache is left as it is.
    cache = DynamicCache([(layer.keys[prefix_rows], layer.values[prefix_rows]) for layer in state.cache.layers])
    width = rows_ids.shape[1]
    attention_mask = torch.cat([state.mask[prefix_rows], rows_mask], 1)
    text_positions = state.next_position[prefix_rows][:, None] + torch.arange(width, device=device)
    output = model(
        input_ids=rows_ids,
        attention_mask=attention_mask,
        position_ids=text_positions[None].expand(3, -1, -1),
        past_key_values=cache,
        use_cache=False,
    )
    log_probs = torch.log_softmax(output.logits[:, :-1].float(), dim=-1)  # predicts tokens 1..width-1
    first = state.next_log_probs[prefix_rows].gather(1, rows_ids[:, :1])
    rest = log_probs.gather(2, rows_ids[:, 1:, None]).squeeze(2)
    token_log_probs = torch.cat([first, rest], dim=1) * rows_mask
    return token_log_probs.sum(dim=1)


@torch.no_grad()
def _reason(
    model: PreTrainedModel,
    encoder: PromptEncoder,
    prompts: Sequence[EncodedPrompt],
    max_new_tokens: int,
    compiled_grammar: object | None,
) -> tuple[list[str], PrefixState]:
    """Greedy CoT reasoning, each row stopping once it has written the answer marker (``REASONING_END``).

    Returns the generated texts (reasoning + marker) and the state to score descriptions after them: the KV
    cache of prompt + generated tokens, each row's prefix columns, next position and next-token log-probs.
    """
    device = model_device(model)
    state = _prefix_state(model, encoder, prompts, device)
    matchers = [xgrammar.GrammarMatcher(compiled_grammar) for _ in prompts] if compiled_grammar is not None else []
    bitmask = xgrammar.allocate_token_bitmask(len(prompts), state.next_log_probs.shape[1]) if matchers else None
    generated: list[list[int]] = [[] for _ in prompts]
    after_marker = state.next_log_probs.clone()
    log_probs, mask, open_rows = state.next_log_probs, state.mask, list(range(len(prompts)))
    for _ in range(max_new_tokens):
        if matchers:
            log_probs = log_probs.clone()
            for row in open_rows:
                matchers[row].fill_next_token_bitmask(bitmask, row)
            xgrammar.apply_token_bitmask_inplace(log_probs, bitmask.to(device), indices=open_rows)
        chosen = log_probs.argmax(dim=-1).tolist()
        step_tokens = torch.full((len(prompts), 1), encoder.pad_token_id, dtype=torch.long)
        column = torch.zeros((len(prompts), 1), dtype=mask.dtype)
        for row in open_rows:
            if matchers and not matchers[row].accept_token(chosen[row]):
                raise MllmConfigError(f"the grammar rejected its own choice {chosen[row]} (row {row})")
            generated[row].append(chosen[row])
            step_tokens[row, 0], column[row, 0] = chosen[row], 1
        mask = torch.cat([mask, column.to(device)], dim=1)
        positions = state.next_position + torch.tensor([len(tokens) - 1 for tokens in generated], device=device)
        output = model(
            input_ids=step_tokens.to(device),
            attention_mask=mask,
            position_ids=positions[None, :, None].expand(3, -1, -1),
            past_key_values=state.cache,
            use_cache=True,
        )
        log_probs = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
        still_open = []
        for row in open_rows:
            if encoder.tokenizer.decode(generated[row][-len(REASONING_END) :]).endswith(REASONING_END):
                after_marker[row] = log_probs[row]
            else:
                still_open.append(row)
        open_rows = still_open
        if not open_rows:
            break
    if open_rows:
        raise MllmConfigError(
            f"{len(open_rows)} reasoning(s) did not reach {REASONING_END!r} within {max_new_tokens} tokens "
            "(give the grammar and its max_new_tokens)"
        )
    lengths = torch.tensor([len(tokens) for tokens in generated], device=device)
    texts = encoder.tokenizer.batch_decode(generated, skip_special_tokens=True)
    return texts, PrefixState(state.cache, mask, state.next_position + lengths, after_marker)


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

    ``compiled_grammar`` is the answer grammar or, cheaper, its reasoning-only form: either way each CoT row stops
    once it has written the answer marker, and descriptions are scored after the generated tokens.
    ``description_token_ids[i]`` are the answer tokens of description ``i`` (end-of-turn included);
    ``allowed[p]`` optionally restricts prompt ``p`` to some description indices (e.g. serendipitous siblings).
    """
    if n < 1:
        raise MllmConfigError(f"n must be >= 1, got {n}")
    if not variant.is_cot:
        scores = score_descriptions(model, encoder, prompts, description_token_ids, allowed)
        reasonings: list[str | None] = [None] * len(prompts)
    else:
        table = _CandidateTable.build(encoder, description_token_ids, model_device(model))
        rows_of = _candidate_rows(len(prompts), len(description_token_ids), allowed)
        texts, state = _reason(model, encoder, prompts, max_new_tokens, compiled_grammar)
        reasonings = [parse_response(variant, text).reasoning or "" for text in texts]
        scores = torch.full((len(prompts), len(description_token_ids)), float("-inf"))
        _fill_scores(scores, model, state, range(len(prompts)), rows_of, table)
    rankings = []
    for row, reasoning in enumerate(reasonings):
        available = int(torch.isfinite(scores[row]).sum())
        top = torch.topk(scores[row], k=min(n, available))
        rankings.append(RankedDescriptions(top.indices.tolist(), top.values.tolist(), reasoning))
    return rankings
