"""Offline A/B simulation on a world with ground truth (paper §4.1 protocol, users simulated).

1. Requests: one per user, the leave-last-out test case of the SASRec artifact — history = the user's
   positive items (satisfaction ≥ the artifact's ``min_satisfaction``) but the last, context item = the last
   history item, held-out target = the last positive item (:func:`heldout_requests`).
2. Segments: users are shuffled with a fixed seed and split into equal, non-overlapping segments, one per arm
   (the remainder is left out) (:func:`assign_segments`).
3. Every arm nominates a slate for every request (counterfactual for the other segments: this is what the
   novel impression ratio compares against); each request's user sees only their own arm's slate.
4. Simulated users (:class:`WorldUsers`) respond to each impression from the world's satisfaction model:
   s = clip(μ(context, item, user) + N(0, σ²), 0, 1), μ the world's expected satisfaction of watching the item
   after the context (with the interest bonus when the item is in one of the user's latent interests), and a
   positive feedback event with probability s (satisfaction is a like / long-watch *rate*). Draws use one
   generator per request seeded by (seed, request number): deterministic by seed, independent of arm order.
5. Fresh-upload segment (:func:`fresh_requests`): every user of step 1 also watches a fresh upload -- a video
   created after the logs end, in no model -- with the same history; the upload is drawn (seeded) among those
   in the true topic of the user's head context. These requests carry ``segment="fresh"`` and no held-out
   target; they follow the head requests, so the head requests' draws are the same with or without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from serendip.artifacts.world import World, WorldOracle
from serendip.core.cluster_tree import ClusterTree, level_column
from serendip.evaluation.replay import FRESH, HEAD, ArmSpec, EvaluationLogs


@dataclass(frozen=True)
class EvaluationRequest:
    """One recommendation request: a user watching ``context_item_id`` after ``history`` (oldest first)."""

    request_id: str
    user_id: str
    context_item_id: str
    history: tuple[str, ...]
    """The user's positive items before the held-out one, oldest first; the context item is the last."""
    heldout_item_id: str | None = None
    segment: str = HEAD
    """``head``: a catalogue context; ``fresh``: an upload newer than every model (``history`` then does not
    end with it)."""


@dataclass(frozen=True)
class Slate:
    """What one arm recommends for one request, best first, with the plan behind it (cluster arms only)."""

    item_ids: tuple[str, ...]
    planned_clusters: tuple[str, ...] = ()
    plan_source: str = ""
    """CACHE / LIVE / FALLBACK for the Planner arms, BANDIT for the bandit, empty otherwise."""


def heldout_requests(
    interactions: pd.DataFrame, min_satisfaction: float, known_items: Iterable[str] | None = None
) -> list[EvaluationRequest]:
    """The leave-last-out test case of every user with at least 3 positive items, in user order.

    Same split as ``serendip.models.sasrec.sequences.leave_last_out`` over ``positive_sequences`` (positives ordered by
    time; items outside ``known_items`` dropped first), so an exploitation arm's Recall@10 here equals the
    SASRec artifact's reported test Recall@10.
    """
    positives = interactions[interactions["satisfaction"] >= min_satisfaction]
    if known_items is not None:
        positives = positives[positives["item_id"].isin(set(known_items))]
    positives = positives.sort_values(["user_id", "ts"], kind="stable")
    requests = []
    for user_id, items in positives.groupby("user_id", sort=True)["item_id"]:
        sequence = [str(item) for item in items]
        if len(sequence) < 3:
            continue
        requests.append(
            EvaluationRequest(
                request_id=f"r{len(requests):06d}",
                user_id=str(user_id),
                context_item_id=sequence[-2],
                history=tuple(sequence[:-1]),
                heldout_item_id=sequence[-1],
            )
        )
    return requests


def sample_requests(requests: Sequence[EvaluationRequest], count: int | None, seed: int) -> list[EvaluationRequest]:
    """A seeded sample of ``count`` requests (all when None or larger), kept in their original order."""
    if count is None or count >= len(requests):
        return list(requests)
    chosen = np.sort(np.random.default_rng(seed).choice(len(requests), size=count, replace=False))
    return [requests[i] for i in chosen]


def fresh_requests(
    requests: Sequence[EvaluationRequest], ground_truth: pd.DataFrame, fresh_truth: pd.DataFrame, seed: int
) -> list[EvaluationRequest]:
    """One fresh-upload request per request: same user and history, context = a fresh upload (seeded draw)
    in the true level-2 topic of the request's context (any upload when that topic has none).

    ``ground_truth`` / ``fresh_truth``: the world's and the uploads' ground truth (``item_id``, ``level_2``).
    Request ids are the head ids with ``-fresh``; no held-out target.
    """
    if fresh_truth.empty:
        return []
    topic_column = level_column(2)
    topic_of = dict(zip(ground_truth["item_id"], ground_truth[topic_column], strict=True))
    uploads = sorted(fresh_truth["item_id"])
    topic_of_upload = dict(zip(fresh_truth["item_id"], fresh_truth[topic_column], strict=True))
    by_topic: dict[str, list[str]] = {}
    for upload in uploads:
        by_topic.setdefault(topic_of_upload[upload], []).append(upload)
    rng = np.random.default_rng([seed, 2])
    fresh = []
    for request in requests:
        pool = by_topic.get(topic_of.get(request.context_item_id), uploads)
        upload = pool[int(rng.integers(len(pool)))]
        fresh.append(
            EvaluationRequest(f"{request.request_id}-fresh", request.user_id, upload, request.history, None, FRESH)
        )
    return fresh


def assign_segments(user_ids: Iterable[str], arm_names: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Equal, non-overlapping user segments, one per arm: a seeded permutation of the sorted users, cut in
    ``len(arm_names)`` equal parts (the last ``len(users) % len(arm_names)`` users are left out)."""
    if not arm_names:
        raise ValueError("no arms")
    users = sorted(set(user_ids))
    order = np.random.default_rng(seed).permutation(len(users))
    size = len(users) // len(arm_names)
    return {
        arm: sorted(users[i] for i in order[position * size : (position + 1) * size])
        for position, arm in enumerate(arm_names)
    }


def truth_with_uploads(world: World, fresh_truth: pd.DataFrame | None) -> pd.DataFrame:
    """The world's ground truth, with the fresh uploads' rows (its columns) when there are any."""
    truth = world.ground_truth
    if fresh_truth is None or fresh_truth.empty:
        return truth
    return pd.concat([truth, fresh_truth[truth.columns.intersection(fresh_truth.columns)]], ignore_index=True)


@dataclass
class WorldUsers:
    """Simulated users: the world's latent interests and satisfaction model (ground truth).

    ``fresh_truth`` (optional): ground truth of the world's fresh uploads, so they can be contexts.
    """

    world: World
    fresh_truth: pd.DataFrame | None = None
    interests: dict[str, set[str]] = field(init=False)
    level2_of: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        truth = truth_with_uploads(self.world, self.fresh_truth)
        self.oracle = WorldOracle(truth, self.world.oracle.model)
        self.noise_sd = self.oracle.model.noise_sd
        self.interests = {row.user_id: set(row.interests) for row in self.world.users.itertuples(index=False)}
        self.level2_of = dict(zip(truth["item_id"], truth[level_column(2)], strict=True))

    def expected_satisfaction(self, user_id: str, context_item_id: str, item_id: str) -> float:
        """μ: the world's mean satisfaction of ``item_id`` after ``context_item_id`` for this user."""
        interested = self.level2_of[item_id] in self.interests.get(user_id, set())
        return self.oracle.expected_satisfaction(context_item_id, item_id, interested=interested)

    def respond(
        self, user_id: str, context_item_id: str, item_ids: Sequence[str], rng: np.random.Generator
    ) -> tuple[list[float], list[bool]]:
        """Satisfaction s = clip(μ + N(0, σ²), 0, 1) and a positive event with probability s, per impression."""
        means = np.array([self.expected_satisfaction(user_id, context_item_id, item) for item in item_ids])
        satisfaction = np.clip(means + rng.normal(0.0, self.noise_sd, len(means)), 0.0, 1.0)
        positive = rng.random(len(means)) < satisfaction
        return satisfaction.round(6).tolist(), positive.tolist()

    def relation(self, context_item_id: str, item_id: str) -> str:
        """same / affine / secondary / serendipitous / random (true taxonomy, l = 3, δ = 1)."""
        return self.oracle.relation(context_item_id, item_id)


def _serving_of_true(world: World, tree: ClusterTree, level: int) -> dict[str, str]:
    """True level-``level`` cluster -> the serving-tree cluster holding most of its items."""
    truth_level = level_column(level)
    built = pd.Series({item: tree.node_of(item, level) for item in tree.item_ids}, name="built")
    members = world.ground_truth[["item_id", truth_level]].merge(built, left_on="item_id", right_index=True)
    counts = members.groupby([truth_level, "built"]).size().reset_index(name="items")
    best = counts.sort_values(["items", "built"], ascending=[False, True]).drop_duplicates(truth_level)
    return dict(zip(best[truth_level], best["built"], strict=True))


def affine_serving_clusters(
    world: World, tree: ClusterTree, level: int, fresh_truth: pd.DataFrame | None = None
) -> dict[str, str]:
    """item -> the serving-tree cluster holding most items of the item's true affine cluster (ground truth);
    with ``fresh_truth``, the fresh uploads too (mapped through the catalogue's membership)."""
    serving_of_true = _serving_of_true(world, tree, level)
    affine = truth_with_uploads(world, fresh_truth).set_index("item_id")["affine_cluster"]
    return {item: serving_of_true[cluster] for item, cluster in affine.items() if cluster in serving_of_true}


def oracle_rankings(
    world: World, tree: ClusterTree, level: int, delta: int, fresh_truth: pd.DataFrame | None = None
) -> dict[str, list[str]]:
    """item -> the serving clusters a perfect context-only planner would rank: the item's good clusters (affine,
    then secondary; ground truth mapped to the serving tree), then the other serendipitous siblings of the item's
    own cluster (by id; they are all equally bad for the item), the own cluster never. Where the serving tree
    merged a good cluster into the item's own, only the siblings are left."""
    serving_of_true = _serving_of_true(world, tree, level)
    truth = truth_with_uploads(world, fresh_truth).set_index("item_id")
    own_column = level_column(level)
    rankings = {}
    for item, row in truth.iterrows():
        own = tree.node_of(item, level) if item in tree else serving_of_true.get(row[own_column])
        good = [serving_of_true.get(row["affine_cluster"]), serving_of_true.get(row["secondary_cluster"])]
        good = list(dict.fromkeys(c for c in good if c is not None and c != own))
        others = sorted(set(tree.siblings(own, delta)) - set(good)) if own is not None else []
        if good or others:
            rankings[item] = good + others
    return rankings


def simulate(
    arms: Sequence[ArmSpec],
    requests: Sequence[EvaluationRequest],
    nominations: Mapping[str, Sequence[Slate]],
    users: WorldUsers,
    seed: int,
    visual_scores: Mapping[str, float] | None = None,
) -> EvaluationLogs:
    """Serve each segment's requests with its arm's slate, draw the users' responses, return replayable logs.

    ``nominations[arm][i]`` is the arm's slate for ``requests[i]``; requests of users outside every segment are
    dropped.
    """
    names = [arm.name for arm in arms]
    segments = assign_segments((request.user_id for request in requests), names, seed)
    arm_of_user = {user: arm for arm, segment in segments.items() for user in segment}
    request_rows, impression_rows, nomination_rows = [], [], []
    for number, request in enumerate(requests):
        arm = arm_of_user.get(request.user_id)
        if arm is None:
            continue
        request_rows.append(
            {
                "request_id": request.request_id,
                "user_id": request.user_id,
                "arm": arm,
                "context_item_id": request.context_item_id,
                "history": list(request.history),
                "heldout_item_id": request.heldout_item_id,
                "visual_score": (visual_scores or {}).get(request.context_item_id, np.nan),
                "segment": request.segment,
            }
        )
        for name in names:
            slate = nominations[name][number]
            nomination_rows += [
                {"request_id": request.request_id, "arm": name, "item_id": item, "position": position}
                for position, item in enumerate(slate.item_ids)
            ]
        served = nominations[arm][number]
        rng = np.random.default_rng([seed, number])
        satisfaction, positive = users.respond(request.user_id, request.context_item_id, served.item_ids, rng)
        impression_rows += [
            {
                "request_id": request.request_id,
                "arm": arm,
                "item_id": item,
                "position": position,
                "satisfaction": satisfaction[position],
                "positive": positive[position],
                "relation": users.relation(request.context_item_id, item),
                "planned_clusters": list(served.planned_clusters),
                "plan_source": served.plan_source,
            }
            for position, item in enumerate(served.item_ids)
        ]
    return EvaluationLogs(
        arms=list(arms),
        requests=pd.DataFrame(request_rows),
        impressions=pd.DataFrame(impression_rows),
        nominations=pd.DataFrame(nomination_rows),
    )
