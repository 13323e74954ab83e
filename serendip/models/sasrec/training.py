"""Train SASRec with full or sampled softmax (``losses``); keep the epoch with the best validation NDCG@10.

Above ``SPARSE_ITEMS_MIN_ITEMS`` items, sampled-softmax training updates the item table sparsely: its rows are
looked up with sparse gradients and updated by ``torch.optim.SparseAdam`` (only the rows of the step's histories,
targets and negatives), every other parameter by AdamW, so a step's cost no longer grows with the catalogue.
SparseAdam is lazy (a row's moments decay only in steps that touch it) and has no weight decay: the item table
is not decayed on this path (``weight_decay``, 0 by default, applies to the other parameters). Full softmax
produces a gradient for every row anyway and keeps AdamW over every parameter, as does sampled softmax on smaller
catalogues (the demo world's training is unchanged).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from serendip.artifacts.sasrec import SASRecConfig
from serendip.models.sasrec.losses import (
    SAMPLED_SOFTMAX_MIN_ITEMS,
    LossKind,
    NegativeSampler,
    full_softmax_loss,
    resolve_loss,
    sampled_softmax_loss,
)
from serendip.models.sasrec.model import SASRec
from serendip.models.sasrec.ranking_metrics import evaluate, popularity_scores
from serendip.models.sasrec.sequences import LeaveLastOutSplit, history_tensor, training_batches

SPARSE_ITEMS_MIN_ITEMS = SAMPLED_SOFTMAX_MIN_ITEMS
"""Sampled-softmax training on a catalogue larger than this updates the item table sparsely (module docstring)."""


@dataclass(frozen=True)
class TrainingOptions:
    """Optimisation settings."""

    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay; not applied to the item table where it is updated sparsely."""
    seed: int = 0
    eval_every: int = 2
    loss: LossKind = "auto"
    num_negatives: int = 1024
    """negatives per step of sampled softmax"""


@dataclass
class TrainingResult:
    """The best model, its epoch, the loss it trained with and the per-epoch log."""

    model: SASRec
    best_epoch: int
    loss: str
    log: list[dict[str, float]] = field(default_factory=list)


def score_with(model: SASRec) -> Callable[[Sequence[list[int]]], np.ndarray]:
    """Histories -> [B, N + 1] scores under ``model`` (eval mode, no grad)."""

    def score(histories: Sequence[list[int]]) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            users = model(history_tensor(histories, model.max_len))
            return (users @ model.item_table().T).numpy()

    return score


class _EmbeddingRows:
    """Stands for the item table in :func:`sampled_softmax_loss`: ``rows[indices]`` looks the rows up through the
    embedding module, so with ``sparse=True`` their gradient is sparse (indexing the weight would make it dense)."""

    def __init__(self, embedding: torch.nn.Embedding) -> None:
        self.embedding = embedding

    def __getitem__(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embedding(indices)


def uses_sparse_items(loss_kind: Literal["full", "sampled"], num_items: int) -> bool:
    """Whether training with ``loss_kind`` over ``num_items`` items updates the item table sparsely."""
    return loss_kind == "sampled" and num_items > SPARSE_ITEMS_MIN_ITEMS


def training_step(
    model: SASRec, loss_kind: Literal["full", "sampled"], options: TrainingOptions, sampler: NegativeSampler | None
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``step(inputs, targets) -> loss``: one optimisation step of ``model`` on a batch (``sampler``: sampled only).

    Sets ``model.item_embedding.sparse`` to the path taken (see the module docstring).
    """
    sparse = uses_sparse_items(loss_kind, model.item_embedding.num_embeddings - 1)
    model.item_embedding.sparse = sparse
    table = model.item_embedding.weight
    if sparse:
        others = [parameter for parameter in model.parameters() if parameter is not table]
        optimizers = [
            torch.optim.SparseAdam([table], lr=options.learning_rate),
            torch.optim.AdamW(others, lr=options.learning_rate, weight_decay=options.weight_decay),
        ]
    else:
        optimizers = [
            torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
        ]
    if loss_kind == "sampled":
        next_item_loss = partial(sampled_softmax_loss, sampler=sampler)
    else:
        next_item_loss = full_softmax_loss

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> float:
        loss = next_item_loss(model.encode(inputs), targets, _EmbeddingRows(model.item_embedding) if sparse else table)
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return loss.item()

    return step


def train_sasrec(
    split: LeaveLastOutSplit, config: SASRecConfig, options: TrainingOptions, show_progress: bool = True
) -> TrainingResult:
    """Next-item training on ``split.train``; model selection on ``split.valid`` NDCG@10.

    Each log entry holds the epoch's mean loss and ``train_seconds`` (its optimisation steps, evaluation excluded).
    """
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    model = SASRec(config)
    loss_kind = resolve_loss(options.loss, config.num_items)
    sampler = None
    if loss_kind == "sampled":
        sampler = NegativeSampler(popularity_scores(split.train, config.num_items), options.num_negatives, options.seed)
    step = training_step(model, loss_kind, options, sampler)
    result = TrainingResult(model=model, best_epoch=0, loss=loss_kind)
    best_ndcg, best_state = -1.0, copy.deepcopy(model.state_dict())
    progress = tqdm(range(1, options.epochs + 1), desc="SASRec epochs", unit="epoch", disable=not show_progress)
    for epoch in progress:
        model.train()
        losses = []
        started = time.perf_counter()
        for inputs, targets in training_batches(split.train, config.max_len, options.batch_size, rng):
            losses.append(step(inputs, targets))
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "train_seconds": time.perf_counter() - started}
        if epoch % options.eval_every == 0 or epoch == options.epochs:
            entry.update({f"valid_{k}": v for k, v in evaluate(score_with(model), split.valid).items()})
            if entry["valid_ndcg@10"] > best_ndcg:
                best_ndcg, best_state, result.best_epoch = (
                    entry["valid_ndcg@10"],
                    copy.deepcopy(model.state_dict()),
                    epoch,
                )
            progress.set_postfix(loss=f"{entry['loss']:.3f}", ndcg10=f"{entry['valid_ndcg@10']:.3f}")
        result.log.append(entry)
    model.load_state_dict(best_state)
    model.item_embedding.sparse = False  # an ordinary SASRec again, whichever path trained it
    model.eval()
    return result
