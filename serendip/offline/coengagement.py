"""Co-engagement signals of the interactions: positive pairs, a held-out split, PMI + SVD item vectors, lift.

* a *positive pair* is (context item, next item) of one interaction -- the context as
  :func:`serendip.offline.curation.mine_pairs` finds it -- whose satisfaction is at least ``min_satisfaction``;
* pairs are split into train / validation / test **by user** (a stable hash of seed and user id), so held-out
  figures measure how well a tree predicts other people's next engagement;
* the collaborative embedding is the truncated SVD of the positive pointwise mutual information (PPMI) of the
  symmetric co-engagement counts, with context-distribution smoothing (Levy, Goldberg & Dagan 2015:
  ``P(j)`` raised to 0.75), rows ``U * sqrt(S)`` L2-normalised;
* the lift of a partition: the share of held-out pairs whose two items fall in one node, divided by the share
  expected if the two ends were drawn independently from their own node distributions
  (``sum_n p_context(n) * p_next(n)``). 1 = no better than chance.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import TruncatedSVD

from serendip.offline.curation import mine_pairs

POSITIVE_SATISFACTION = 0.5
SPLITS = ("train", "validation", "test")


def positive_pairs(interactions: pd.DataFrame, min_satisfaction: float = POSITIVE_SATISFACTION) -> pd.DataFrame:
    """(context_item_id, next_item_id, user_id) of every interaction with a context and satisfaction >= the bar."""
    if interactions is None or len(interactions) == 0:
        return pd.DataFrame(columns=["context_item_id", "next_item_id", "user_id"])
    pairs = mine_pairs(interactions)
    pairs = pairs[(pairs["satisfaction"] >= min_satisfaction) & (pairs["context_item_id"] != pairs["next_item_id"])]
    return pairs[["context_item_id", "next_item_id", "user_id"]].reset_index(drop=True)


def split_pairs_by_user(
    pairs: pd.DataFrame, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Pairs split into ``SPLITS`` by a stable hash of (seed, user id): a user's pairs stay in one split."""
    users = pairs["user_id"].astype(str).unique()
    draws = {user: zlib.crc32(f"{seed}/{user}".encode()) / 2**32 for user in users}
    position = pairs["user_id"].astype(str).map(draws).to_numpy(dtype=np.float64)
    split = np.full(len(pairs), "train", dtype=object)
    split[position < test_fraction + validation_fraction] = "validation"
    split[position < test_fraction] = "test"
    return {name: pairs[split == name].reset_index(drop=True) for name in SPLITS}


@dataclass
class CollaborativeVectors:
    """PPMI + SVD vectors aligned with ``item_ids``; ``pair_counts`` = positive pairs each item is in (0: cold)."""

    item_ids: list[str]
    vectors: np.ndarray
    pair_counts: np.ndarray


def cooccurrence_matrix(pairs: pd.DataFrame, item_ids: Sequence[str]) -> sparse.csr_matrix:
    """Symmetric item x item counts of the pairs (both directions), items outside ``item_ids`` ignored."""
    index = {item_id: position for position, item_id in enumerate(item_ids)}
    rows = pairs["context_item_id"].map(index)
    cols = pairs["next_item_id"].map(index)
    known = rows.notna() & cols.notna()
    rows, cols = rows[known].to_numpy(dtype=np.int64), cols[known].to_numpy(dtype=np.int64)
    data = np.ones(2 * len(rows))
    size = len(item_ids)
    return sparse.csr_matrix((data, (np.r_[rows, cols], np.r_[cols, rows])), shape=(size, size))


def ppmi(counts: sparse.csr_matrix, smoothing: float = 0.75) -> sparse.csr_matrix:
    """Positive PMI of a symmetric count matrix: ``max(0, log(c_ij * sum_k f_k / (n_i * f_j)))``, ``f = n ** alpha``."""
    counts = counts.tocoo()
    row_sums = np.asarray(counts.sum(axis=1)).ravel()
    smoothed = row_sums**smoothing
    total = counts.sum()
    if total == 0:
        return sparse.csr_matrix(counts.shape)
    p_joint = counts.data / total
    p_row = row_sums[counts.row] / total
    p_col = smoothed[counts.col] / smoothed.sum()
    values = np.maximum(np.log(p_joint / (p_row * p_col)), 0.0)
    return sparse.csr_matrix((values, (counts.row, counts.col)), shape=counts.shape)


def pmi_svd_vectors(
    pairs: pd.DataFrame, item_ids: Sequence[str], dims: int = 32, smoothing: float = 0.75, seed: int = 0
) -> CollaborativeVectors:
    """The collaborative embedding of the module docstring; items in no pair get a zero row."""
    counts = cooccurrence_matrix(pairs, item_ids)
    pair_counts = np.asarray(counts.sum(axis=1)).ravel()
    matrix = ppmi(counts, smoothing)
    dims = min(dims, len(item_ids) - 1)
    if matrix.nnz == 0 or dims < 1:
        return CollaborativeVectors(list(item_ids), np.zeros((len(item_ids), 1)), pair_counts)
    svd = TruncatedSVD(dims, random_state=seed)
    projected = svd.fit_transform(matrix) / np.sqrt(np.maximum(svd.singular_values_, 1e-12))
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    vectors = np.divide(projected, norms, out=np.zeros_like(projected), where=norms > 1e-12)
    return CollaborativeVectors(list(item_ids), vectors, pair_counts)


def coengagement_lift(node_of: Mapping[str, str], pairs: pd.DataFrame) -> dict[str, float] | None:
    """Share of ``pairs`` inside one node, the share expected by chance, and their ratio (None: no usable pair)."""
    context = pairs["context_item_id"].map(node_of)
    following = pairs["next_item_id"].map(node_of)
    known = context.notna() & following.notna()
    if not known.any():
        return None
    context, following = context[known], following[known]
    inside = float((context.to_numpy() == following.to_numpy()).mean())
    shares = pd.concat([context.value_counts(normalize=True), following.value_counts(normalize=True)], axis=1).fillna(
        0.0
    )
    chance = float((shares.iloc[:, 0] * shares.iloc[:, 1]).sum())
    return {"pairs": int(known.sum()), "inside": inside, "chance": chance, "lift": inside / chance if chance else 0.0}
