"""User sequences for SASRec: positive-feedback sequences, leave-last-out split, training batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from serendip.artifacts.sasrec import ItemVocabulary, left_pad


def positive_sequences(
    interactions: pd.DataFrame, vocabulary: ItemVocabulary, min_satisfaction: float
) -> list[list[int]]:
    """Per user, the indices of items with satisfaction >= ``min_satisfaction``, ordered by time."""
    positives = interactions[interactions["satisfaction"] >= min_satisfaction]
    positives = positives.assign(index=positives["item_id"].map(vocabulary.index)).dropna(subset=["index"])
    positives = positives.sort_values(["user_id", "ts"], kind="stable")
    return [group.astype(int).tolist() for _, group in positives.groupby("user_id", sort=True)["index"]]


@dataclass(frozen=True)
class EvaluationCase:
    """One held-out prediction: the history before ``target``."""

    history: list[int]
    target: int


@dataclass(frozen=True)
class LeaveLastOutSplit:
    """Training sequences (all but the last two items), validation (second to last) and test (last) cases."""

    train: list[list[int]]
    valid: list[EvaluationCase]
    test: list[EvaluationCase]


def leave_last_out(sequences: Sequence[list[int]], min_length: int = 3) -> LeaveLastOutSplit:
    """Split each sequence of at least ``min_length`` items; shorter ones train only."""
    train, valid, test = [], [], []
    for sequence in sequences:
        if len(sequence) < min_length:
            train.append(list(sequence))
            continue
        train.append(sequence[:-2])
        valid.append(EvaluationCase(sequence[:-2], sequence[-2]))
        test.append(EvaluationCase(sequence[:-1], sequence[-1]))
    return LeaveLastOutSplit(train=[s for s in train if len(s) >= 2], valid=valid, test=test)


def training_batches(
    sequences: Sequence[list[int]], max_len: int, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled (inputs, next-item targets) pairs, both [B, max_len], left-padded with 0."""
    order = rng.permutation(len(sequences))
    for start in range(0, len(order), batch_size):
        chosen = [sequences[i][-(max_len + 1) :] for i in order[start : start + batch_size]]
        inputs = [left_pad(sequence[:-1], max_len) for sequence in chosen]
        targets = [left_pad(sequence[1:], max_len) for sequence in chosen]
        yield torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def history_tensor(histories: Sequence[list[int]], max_len: int) -> torch.Tensor:
    """[B, max_len] left-padded histories."""
    return torch.tensor([left_pad(history, max_len) for history in histories], dtype=torch.long)
