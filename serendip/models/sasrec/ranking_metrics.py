"""Full-ranking evaluation of next-item predictors (no negative sampling).

Protocol: for each held-out case every catalogue item is scored; items already in the case's history
are excluded from the ranking; Recall@k is 1 when the target ranks in the top k, NDCG@k is
1/log2(rank + 1) for a target at 1-based rank <= k, else 0. Means over cases are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from serendip.models.sasrec.sequences import EvaluationCase

ScoreFunction = Callable[[Sequence[list[int]]], np.ndarray]


def target_ranks(scores: np.ndarray, cases: Sequence[EvaluationCase]) -> np.ndarray:
    """1-based rank of each case's target among items 1..N (column 0 is padding), history masked."""
    masked = scores.astype(np.float64, copy=True)
    masked[:, 0] = -np.inf
    for row, case in enumerate(cases):
        seen = [index for index in case.history if index != case.target]
        masked[row, seen] = -np.inf
    target_scores = masked[np.arange(len(cases)), [case.target for case in cases]]
    return 1 + (masked > target_scores[:, None]).sum(axis=1)


def recall_ndcg_at_k(ranks: np.ndarray, k: int) -> dict[str, float]:
    """Mean Recall@k and NDCG@k from 1-based ranks."""
    hits = ranks <= k
    ndcg = np.where(hits, 1.0 / np.log2(ranks + 1.0), 0.0)
    return {f"recall@{k}": float(hits.mean()), f"ndcg@{k}": float(ndcg.mean())}


def evaluate(score: ScoreFunction, cases: Sequence[EvaluationCase], k: int = 10, batch_size: int = 256) -> dict:
    """Recall@k / NDCG@k of ``score`` (histories -> [B, N + 1] scores) over ``cases``."""
    ranks = [
        target_ranks(score([c.history for c in cases[i : i + batch_size]]), cases[i : i + batch_size])
        for i in range(0, len(cases), batch_size)
    ]
    return {**recall_ndcg_at_k(np.concatenate(ranks), k), "cases": len(cases)}


def popularity_scores(train: Sequence[list[int]], num_items: int) -> np.ndarray:
    """Count of each item index in the training sequences, [num_items + 1]."""
    counts = np.zeros(num_items + 1, dtype=np.float64)
    for sequence in train:
        np.add.at(counts, sequence, 1.0)
    return counts
