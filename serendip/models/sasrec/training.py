"""Train SASRec with full or sampled softmax (``losses``); keep the epoch with the best validation NDCG@10."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from tqdm import tqdm

from serendip.artifacts.sasrec import SASRecConfig
from serendip.models.sasrec.losses import (
    LossKind,
    NegativeSampler,
    full_softmax_loss,
    resolve_loss,
    sampled_softmax_loss,
)
from serendip.models.sasrec.model import SASRec
from serendip.models.sasrec.ranking_metrics import evaluate, popularity_scores
from serendip.models.sasrec.sequences import LeaveLastOutSplit, history_tensor, training_batches


@dataclass(frozen=True)
class TrainingOptions:
    """Optimisation settings."""

    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
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


def train_sasrec(
    split: LeaveLastOutSplit, config: SASRecConfig, options: TrainingOptions, show_progress: bool = True
) -> TrainingResult:
    """Next-item training on ``split.train``; model selection on ``split.valid`` NDCG@10.

    Each log entry holds the epoch's mean loss and ``train_seconds`` (its optimisation steps, evaluation excluded).
    """
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    model = SASRec(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    loss_kind = resolve_loss(options.loss, config.num_items)
    if loss_kind == "sampled":
        sampler = NegativeSampler(popularity_scores(split.train, config.num_items), options.num_negatives, options.seed)
        next_item_loss = partial(sampled_softmax_loss, sampler=sampler)
    else:
        next_item_loss = full_softmax_loss
    result = TrainingResult(model=model, best_epoch=0, loss=loss_kind)
    best_ndcg, best_state = -1.0, copy.deepcopy(model.state_dict())
    progress = tqdm(range(1, options.epochs + 1), desc="SASRec epochs", unit="epoch", disable=not show_progress)
    for epoch in progress:
        model.train()
        losses = []
        started = time.perf_counter()
        for inputs, targets in training_batches(split.train, config.max_len, options.batch_size, rng):
            loss = next_item_loss(model.encode(inputs), targets, model.item_table())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
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
    model.eval()
    return result
