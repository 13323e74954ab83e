"""User sequences for SASRec: item vocabulary, positive-feedback sequences, leave-last-out split, batches."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serendip.models.sasrec.model import left_pad


class ItemVocabulary:
    """Bijection catalogue item id <-> model index; index 0 is padding, items are 1..N."""

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids = [str(item_id) for item_id in item_ids]
        self._index = {item_id: position + 1 for position, item_id in enumerate(self.item_ids)}
        if len(self._index) != len(self.item_ids):
            raise ValueError("item ids must be unique")

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self, item_id: str) -> int | None:
        """Model index of ``item_id``, None when unknown."""
        return self._index.get(item_id)

    def item_id(self, index: int) -> str:
        """Catalogue id of model index ``index`` (1..N)."""
        return self.item_ids[index - 1]

    def save(self, path: Path) -> None:
        """Write as a JSON list (position i holds the id of index i + 1)."""
        path.write_text(json.dumps(self.item_ids))

    @classmethod
    def load(cls, path: Path) -> ItemVocabulary:
        """Read a vocabulary written by :meth:`save`."""
        return cls(json.loads(Path(path).read_text()))


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
