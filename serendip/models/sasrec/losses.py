"""Next-item training losses of SASRec: full softmax over every item, or sampled softmax with the logQ correction.

Full softmax scores every position against the whole item table: O(items) per position. Sampled softmax
(Jean et al. 2015; the logQ correction as in Yi et al. 2019) scores each position against its target and
``num_negatives`` items drawn once per step, shared by every position of the batch, from the proposal
Q(i) proportional to (training count of i + 1) ** ``PROPOSAL_EXPONENT``; every candidate's logit is lowered by
log(num_negatives * Q(i)), its expected count in the draw, and a draw equal to a position's target is masked
for that position. The per-step cost then depends on ``num_negatives``, not on the catalogue.
``--loss auto`` picks sampled softmax above ``SAMPLED_SOFTMAX_MIN_ITEMS`` items. Evaluation always ranks all
items (``ranking_metrics``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

LossKind = Literal["auto", "full", "sampled"]
SAMPLED_SOFTMAX_MIN_ITEMS = 20_000
"""``auto`` uses sampled softmax for catalogues larger than this, full softmax up to it."""
PROPOSAL_EXPONENT = 0.75
"""Q(i) is proportional to (count + 1) ** this: popular items are drawn more, every item can be drawn."""


def resolve_loss(loss: LossKind, num_items: int) -> Literal["full", "sampled"]:
    """``loss`` itself, or for ``auto`` the loss a catalogue of ``num_items`` trains with."""
    if loss == "auto":
        return "sampled" if num_items > SAMPLED_SOFTMAX_MIN_ITEMS else "full"
    if loss not in ("full", "sampled"):
        raise ValueError(f"loss must be auto, full or sampled, not {loss!r}")
    return loss


def full_softmax_loss(states: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over all items; ``states`` [B, L, D], ``targets`` [B, L] (0: padding, ignored)."""
    logits = states @ item_table.T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0)


class NegativeSampler:
    """Draws shared negatives from Q (see the module docstring) with a seeded generator: O(k log items) a draw."""

    def __init__(self, counts: np.ndarray, num_negatives: int, seed: int) -> None:
        """``counts`` [items + 1] training counts per index (index 0, padding, is never drawn)."""
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be at least 1, not {num_negatives}")
        weights = (np.asarray(counts[1:], dtype=np.float64) + 1.0) ** PROPOSAL_EXPONENT
        probability = weights / weights.sum()
        self.num_negatives = num_negatives
        self._cumulative = torch.from_numpy(np.cumsum(probability))
        self._log_expected = torch.from_numpy(np.log(num_negatives * np.concatenate([[1.0], probability]))).float()
        self._generator = torch.Generator().manual_seed(seed)

    def sample(self) -> torch.Tensor:
        """``num_negatives`` item indices (1..items), drawn with replacement."""
        uniform = torch.rand(self.num_negatives, generator=self._generator, dtype=torch.float64)
        positions = torch.searchsorted(self._cumulative, uniform * self._cumulative[-1], right=True)
        return positions.clamp_(max=len(self._cumulative) - 1) + 1

    def log_expected_count(self, indices: torch.Tensor) -> torch.Tensor:
        """log(num_negatives * Q(i)) of each index: what the logQ correction subtracts."""
        return self._log_expected[indices]


def sampled_softmax_loss(
    states: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, sampler: NegativeSampler
) -> torch.Tensor:
    """Cross-entropy of each non-padding position's target against one shared draw of negatives, logQ-corrected."""
    positions = targets != 0
    hidden, target = states[positions], targets[positions]
    negatives = sampler.sample()
    target_logits = (hidden * item_table[target]).sum(-1) - sampler.log_expected_count(target)
    negative_logits = hidden @ item_table[negatives].T - sampler.log_expected_count(negatives)
    negative_logits = negative_logits.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
    logits = torch.cat([target_logits.unsqueeze(1), negative_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long))
