"""Histories on which two formats of the user encoder must agree: held-out users, random and left-padded ones."""

from __future__ import annotations

import torch

from serendip.artifacts.sasrec import SASRecConfig
from serendip.models.sasrec.sequences import LeaveLastOutSplit, history_tensor

PARITY_BATCH_SIZES = (1, 3, 8, 64, 100)
"""1 and more than Triton's max batch size (64) included: the exported batch dimension is dynamic."""


def parity_histories(split: LeaveLastOutSplit, config: SASRecConfig, seed: int = 0) -> list[torch.Tensor]:
    """Batches of int64 [B, max_len] histories: the held-out users' histories plus an empty and a one-item one,
    then one batch per size in PARITY_BATCH_SIZES of random item indices behind a random number of left-padding
    zeros (from none to all)."""
    generator = torch.Generator().manual_seed(seed)
    batches = [history_tensor([case.history for case in split.test[:16]] + [[], [3]], config.max_len)]
    for size in PARITY_BATCH_SIZES:
        items = torch.randint(1, config.num_items + 1, (size, config.max_len), generator=generator)
        padding = torch.randint(0, config.max_len + 1, (size, 1), generator=generator)
        positions = torch.arange(config.max_len).unsqueeze(0)
        batches.append(torch.where(positions < padding, 0, items))
    return batches
