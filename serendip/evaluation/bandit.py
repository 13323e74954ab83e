"""Exploration baseline of paper §4.1: a neural-linear bandit that picks the next novel cluster at level l.

:class:`LinUCB` is disjoint LinUCB (Li, Chu, Langford, Schapire, "A contextual-bandit approach to
personalized news article recommendation", WWW 2010): per arm a a ridge regression
θ_a = A_a⁻¹ b_a with A_a = λI + Σ x xᵀ and b_a = Σ r x, and the arm maximising θ_aᵀx + α·sqrt(xᵀA_a⁻¹x).

:class:`ClusterBandit` is the neural-linear variant (Riquelme, Tucker, Snoek, "Deep Bayesian bandits
showdown", ICLR 2018): the features are a neural representation — SASRec's learned embedding of the context
item, L2-normalised, plus a bias — and the arms are the planning-level clusters. It is warm-started from
logged transitions (context item -> next item's cluster, reward = satisfaction). Its ``scope`` says which
clusters it may choose:

- ``novel`` (default, the paper's "predict next novel cluster"): any cluster new to the user, i.e. not among
  the clusters of the history (context included); when none is left, any cluster but the context's own.
- ``siblings``: the Planner's candidate set — the context cluster's serendipitous siblings (same level-(l-δ)
  parent), those outside the history first. Same candidates as the MLLM, a different chooser.

A context the bandit has no embedding for (a fresh upload: in no log, so not in SASRec's vocabulary) gets the
content-free features [0, …, 0, 1]: only the bias weight of each arm counts, i.e. the cluster's prior reward
from the logs (plus its exploration bonus). With no cluster for the context either, ``siblings`` falls back to
the clusters new to the user, as ``novel`` does.

In-cluster retrieval is the Retriever's CLUSTER_RESTRICTED mode (see ``arms.BanditArm``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd

from serendip.core.cluster_tree import ClusterTree
from serendip.core.recency import recent_items

BanditScope = Literal["novel", "siblings"]
"""Clusters the bandit may pick: any cluster new to the user, or the context's serendipitous siblings."""
SCOPES: tuple[str, ...] = get_args(BanditScope)


class LinUCB:
    """Disjoint LinUCB over a fixed set of named arms; see the module docstring for the formulas."""

    def __init__(self, arms: Sequence[str], dimension: int, alpha: float = 0.5, ridge: float = 1.0) -> None:
        if not arms:
            raise ValueError("LinUCB needs at least one arm")
        self.arms = list(arms)
        self.arm_index = {arm: index for index, arm in enumerate(self.arms)}
        self.dimension = dimension
        self.alpha = alpha
        self.precision = np.repeat(ridge * np.eye(dimension)[None], len(self.arms), axis=0)
        self.response = np.zeros((len(self.arms), dimension))
        self.covariance = np.repeat(np.eye(dimension)[None] / ridge, len(self.arms), axis=0)
        self.pulls = np.zeros(len(self.arms), dtype=np.int64)

    def fit(self, arms: Sequence[str], features: np.ndarray, rewards: np.ndarray) -> None:
        """Add a batch of observed (arm, features, reward) triples (e.g. logged data) at once."""
        indices = np.array([self.arm_index[arm] for arm in arms], dtype=np.int64)
        features = np.asarray(features, dtype=np.float64)
        rewards = np.asarray(rewards, dtype=np.float64)
        for index in np.unique(indices):
            rows = indices == index
            self.precision[index] += features[rows].T @ features[rows]
            self.response[index] += features[rows].T @ rewards[rows]
            self.covariance[index] = np.linalg.inv(self.precision[index])
            self.pulls[index] += int(rows.sum())

    def update(self, arm: str, features: np.ndarray, reward: float) -> None:
        """Add one observation (Sherman-Morrison update of the arm's inverse)."""
        index = self.arm_index[arm]
        x = np.asarray(features, dtype=np.float64)
        self.precision[index] += np.outer(x, x)
        self.response[index] += reward * x
        covariance_x = self.covariance[index] @ x
        self.covariance[index] -= np.outer(covariance_x, covariance_x) / (1 + x @ covariance_x)
        self.pulls[index] += 1

    def upper_bounds(self, features: np.ndarray, allowed: Iterable[str] | None = None) -> dict[str, float]:
        """θ_aᵀx + α·sqrt(xᵀA_a⁻¹x) for every allowed arm (all arms when None)."""
        x = np.asarray(features, dtype=np.float64)
        names = self.arms if allowed is None else [arm for arm in allowed if arm in self.arm_index]
        indices = np.array([self.arm_index[arm] for arm in names], dtype=np.int64)
        covariance = self.covariance[indices]
        theta = np.einsum("aij,aj->ai", covariance, self.response[indices])
        width = np.sqrt(np.maximum(np.einsum("i,aij,j->a", x, covariance, x), 0.0))
        return dict(zip(names, (theta @ x + self.alpha * width).tolist(), strict=True))

    def choose(self, features: np.ndarray, allowed: Iterable[str] | None = None) -> str:
        """The allowed arm with the highest upper bound (ties: the first in arm order)."""
        bounds = self.upper_bounds(features, allowed)
        if not bounds:
            raise ValueError("no allowed arm")
        return max(bounds, key=lambda arm: (bounds[arm], -self.arm_index[arm]))


def context_features(item_embeddings: Mapping[str, np.ndarray], item_id: str) -> np.ndarray:
    """[e / ‖e‖, 1]: the item's embedding normalised to unit length, plus a bias term."""
    embedding = np.asarray(item_embeddings[item_id], dtype=np.float64)
    norm = np.linalg.norm(embedding)
    return np.append(embedding / norm if norm > 0 else embedding, 1.0)


class ClusterBandit:
    """Chooses a planning-level cluster new to the user for a context item (neural-linear LinUCB)."""

    def __init__(
        self,
        tree: ClusterTree,
        level: int,
        item_embeddings: Mapping[str, np.ndarray],
        alpha: float = 0.5,
        scope: BanditScope = "novel",
        delta: int = 1,
        recent_window: int | None = None,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.tree = tree
        self.level = level
        self.scope = scope
        self.delta = delta
        self.recent_window = recent_window
        """Only the last this many history items count as seen (None: the whole history), as the Planner's."""
        self.item_embeddings = item_embeddings
        dimension = len(next(iter(item_embeddings.values()))) + 1
        self.policy = LinUCB(tree.nodes_at(level), dimension, alpha=alpha)

    def features(self, item_id: str) -> np.ndarray:
        """Context features of ``item_id``; content-free (bias only: the clusters' prior) for an unknown item."""
        if item_id not in self.item_embeddings:
            return np.append(np.zeros(self.policy.dimension - 1), 1.0)
        return context_features(self.item_embeddings, item_id)

    def warm_start(self, transitions: pd.DataFrame) -> int:
        """Fit on logged (context_item_id, item_id, satisfaction) rows whose next item changes cluster.

        Rows with an unknown item or an unchanged level-l cluster are skipped; returns the rows used.
        """
        known = transitions["context_item_id"].isin(self.item_embeddings.keys()) & transitions["item_id"].isin(
            self.item_embeddings.keys()
        )
        known &= transitions["context_item_id"].map(lambda i: i in self.tree) & transitions["item_id"].map(
            lambda i: i in self.tree
        )
        rows = transitions[known]
        context_clusters = rows["context_item_id"].map(lambda i: self.tree.node_of(i, self.level))
        next_clusters = rows["item_id"].map(lambda i: self.tree.node_of(i, self.level))
        novel = (context_clusters != next_clusters).to_numpy()
        rows, next_clusters = rows[novel], next_clusters[novel]
        if len(rows):
            features = np.stack([self.features(item_id) for item_id in rows["context_item_id"]])
            self.policy.fit(next_clusters.tolist(), features, rows["satisfaction"].to_numpy())
        return len(rows)

    def allowed_clusters(self, context_item_id: str, history_item_ids: Sequence[str]) -> list[str]:
        """The clusters the bandit may choose for this context and history (see ``scope``)."""
        recent = recent_items(history_item_ids, self.recent_window)
        seen = {self.tree.node_of(i, self.level) for i in [*recent, context_item_id] if i in self.tree}
        own = self.tree.node_of(context_item_id, self.level) if context_item_id in self.tree else None
        if self.scope == "siblings" and own is not None:
            siblings = self.tree.siblings(own, self.delta)
            return [cluster for cluster in siblings if cluster not in seen] or siblings
        fresh = [cluster for cluster in self.policy.arms if cluster not in seen]
        return fresh or [cluster for cluster in self.policy.arms if cluster != own]

    def choose(self, context_item_id: str, history_item_ids: Sequence[str]) -> str:
        """The next novel cluster for this context and history."""
        return self.policy.choose(
            self.features(context_item_id), self.allowed_clusters(context_item_id, history_item_ids)
        )
