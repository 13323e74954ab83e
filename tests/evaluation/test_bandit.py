"""LinUCB learns a simple synthetic preference; the cluster bandit warm-starts from logs and picks novel clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serendip.core.cluster_tree import ClusterNode, ClusterTree
from serendip.evaluation.bandit import ClusterBandit, LinUCB, context_features

# P(reward) of arms a/b/c for two kinds of context: kind 0 likes "b", kind 1 likes "c".
PREFERENCE = {0: {"a": 0.2, "b": 0.8, "c": 0.3}, 1: {"a": 0.3, "b": 0.2, "c": 0.9}}


def _features(kind: int) -> np.ndarray:
    return np.array([1.0 - kind, float(kind), 1.0])


def test_linucb_learns_which_arm_each_context_prefers_online() -> None:
    rng = np.random.default_rng(0)
    policy = LinUCB(["a", "b", "c"], dimension=3, alpha=0.5)
    chosen_best = []
    for _ in range(600):
        kind = int(rng.integers(2))
        arm = policy.choose(_features(kind))
        best = max(PREFERENCE[kind], key=PREFERENCE[kind].get)
        chosen_best.append(arm == best)
        policy.update(arm, _features(kind), float(rng.random() < PREFERENCE[kind][arm]))
    assert policy.choose(_features(0)) == "b"
    assert policy.choose(_features(1)) == "c"
    assert np.mean(chosen_best[-200:]) > 0.85 > np.mean(chosen_best[:50])
    assert policy.pulls.sum() == 600


def test_linucb_batch_fit_equals_one_by_one_updates() -> None:
    rng = np.random.default_rng(1)
    arms = rng.choice(["a", "b"], 40).tolist()
    features = rng.normal(size=(40, 3))
    rewards = rng.random(40)
    batch, online = LinUCB(["a", "b"], 3), LinUCB(["a", "b"], 3)
    batch.fit(arms, features, rewards)
    for arm, x, reward in zip(arms, features, rewards, strict=True):
        online.update(arm, x, reward)
    np.testing.assert_allclose(batch.covariance, online.covariance, atol=1e-10)
    assert batch.upper_bounds(features[0]) == pytest.approx(online.upper_bounds(features[0]))
    assert set(batch.upper_bounds(features[0], allowed=["b", "unknown"])) == {"b"}


def _tree() -> ClusterTree:
    """Two level-1 topics with two level-2 clusters each; items x0..x7, two per cluster."""
    nodes = [ClusterNode(f"c{t:02d}", 1, None, f"topic {t}") for t in range(2)]
    nodes += [ClusterNode(f"c{t:02d}.{c:02d}", 2, f"c{t:02d}", f"cluster {t}{c}") for t in range(2) for c in range(2)]
    leaves = {f"x{2 * (2 * t + c) + i}": f"c{t:02d}.{c:02d}" for t in range(2) for c in range(2) for i in range(2)}
    return ClusterTree(nodes, leaves, num_levels=2)


def test_cluster_bandit_warm_starts_from_logs_and_chooses_the_best_novel_cluster() -> None:
    tree = _tree()
    embeddings = {item: np.eye(4)[int(item[1:]) // 2] + 0.01 * int(item[1:]) for item in tree.item_ids}
    favourite = {"c00.00": "c01.01", "c00.01": "c00.00", "c01.00": "c00.01", "c01.01": "c01.00"}
    rows = []
    rng = np.random.default_rng(2)
    for _ in range(400):
        context, following = (str(i) for i in rng.choice(tree.item_ids, 2, replace=False))
        liked = tree.node_of(following, 2) == favourite[tree.node_of(context, 2)]
        rows.append({"context_item_id": context, "item_id": following, "satisfaction": 0.9 if liked else 0.2})
    bandit = ClusterBandit(tree, 2, embeddings, alpha=0.1)
    used = bandit.warm_start(pd.DataFrame(rows))
    assert 0 < used < 400  # transitions inside the context's own cluster are not novel
    for context in tree.item_ids:
        assert bandit.choose(context, [context]) == favourite[tree.node_of(context, 2)]
    # the favourite is already in the history: the next best novel cluster, never a consumed one
    assert bandit.choose("x0", ["x6", "x0"]) not in {"c00.00", "c01.01"}
    assert bandit.allowed_clusters("x0", tree.item_ids) == ["c00.01", "c01.00", "c01.01"]
    siblings = ClusterBandit(tree, 2, embeddings, scope="siblings")
    siblings.warm_start(pd.DataFrame(rows))
    assert siblings.allowed_clusters("x0", ["x0"]) == ["c00.01"]  # the only serendipitous sibling
    assert siblings.choose("x0", ["x0"]) == "c00.01"  # although c01.01 pays more, it is another topic
    assert siblings.allowed_clusters("x0", ["x2", "x0"]) == ["c00.01"]  # consumed, but the only candidate
    windowed = ClusterBandit(tree, 2, embeddings, scope="novel", recent_window=1)
    assert windowed.allowed_clusters("x0", ["x6", "x4", "x0"]) == ["c00.01", "c01.00", "c01.01"]  # x6, x4 too old
    assert bandit.allowed_clusters("x0", ["x6", "x4", "x0"]) == ["c00.01"]
    np.testing.assert_allclose(np.linalg.norm(context_features(embeddings, "x3")[:-1]), 1.0)


def test_an_unknown_context_gets_content_free_features_and_the_clusters_prior() -> None:
    tree = _tree()
    embeddings = {item: np.eye(4)[int(item[1:]) // 2] for item in tree.item_ids}
    # whatever the context, transitions into c01.00 pay most: the prior the bias weight learns
    rows = [
        {"context_item_id": context, "item_id": following, "satisfaction": 0.9 if following in ("x4", "x5") else 0.1}
        for context in tree.item_ids
        for following in tree.item_ids
    ]
    for scope in ("novel", "siblings"):
        bandit = ClusterBandit(tree, 2, embeddings, alpha=0.0, scope=scope)
        bandit.warm_start(pd.DataFrame(rows))
        np.testing.assert_array_equal(bandit.features("fresh"), [0, 0, 0, 0, 1])
        # no cluster for the context: any cluster new to the user, in either scope
        assert bandit.allowed_clusters("fresh", ["x0"]) == ["c00.01", "c01.00", "c01.01"]
        assert bandit.choose("fresh", ["x0"]) == "c01.00"
