"""Request mix from real artifacts: context items drawn by impressions, histories from held-out sessions.

The held-out session of a user is their last session (by start time) in the world's interactions; it
plays the role of the recent history a ranking stack would send. Retrieve requests ask for the context
item's serendipitous siblings at the planning level, as the Planner would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact, left_pad
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cluster_tree import DEFAULT_PLANNING_LEVEL, ClusterTree
from serendip.v1 import common_pb2, planner_pb2, retriever_pb2

MAX_HISTORY_EVENTS = 50
SESSIONLESS_HISTORY_EVENTS = 10


@dataclass(frozen=True)
class HeldOutEvent:
    """One engagement of a held-out session."""

    item_id: str
    timestamp_ms: int
    satisfaction: float


def held_out_sessions(interactions: pd.DataFrame, max_events: int = MAX_HISTORY_EVENTS) -> list[list[HeldOutEvent]]:
    """Each user's last session, oldest event first (the last ``max_events`` of it).

    Without a ``session_id`` column, each user's last ``SESSIONLESS_HISTORY_EVENTS`` interactions stand in.
    """
    ordered = interactions.sort_values(["user_id", "ts"], kind="stable")
    if "session_id" in ordered and ordered["session_id"].notna().any():
        starts = ordered.groupby(["user_id", "session_id"], sort=False)["ts"].transform("min")
        last_start = starts.groupby(ordered["user_id"]).transform("max")
        held_out = ordered[starts == last_start]
    else:
        held_out = ordered.groupby("user_id", sort=False).tail(SESSIONLESS_HISTORY_EVENTS)
    timestamps_ms = pd.to_datetime(held_out["ts"], utc=True).astype("int64") // 1_000_000
    sessions: list[list[HeldOutEvent]] = []
    for _, group in held_out.assign(ts_ms=timestamps_ms).groupby("user_id", sort=True):
        events = [
            HeldOutEvent(str(item_id), int(ts_ms), float(satisfaction))
            for item_id, ts_ms, satisfaction in group[["item_id", "ts_ms", "satisfaction"]].itertuples(index=False)
        ]
        sessions.append(events[-max_events:])
    return sessions


class RequestMix:
    """Seeded generator of realistic requests for every load-test target."""

    def __init__(
        self,
        item_ids: Sequence[str],
        impressions: Sequence[float],
        sessions: list[list[HeldOutEvent]],
        tree: ClusterTree,
        vocabulary_index: dict[str, int],
        max_len: int,
        level: int = DEFAULT_PLANNING_LEVEL,
        delta: int = 1,
        seed: int = 0,
    ) -> None:
        if not item_ids or not sessions:
            raise ValueError("a request mix needs at least one item and one held-out session")
        self.item_ids = np.asarray(item_ids, dtype=object)
        weights = np.asarray(impressions, dtype=np.float64)
        self.weights = weights / weights.sum()
        self.sessions = sessions
        self.tree = tree
        self.vocabulary_index = vocabulary_index
        self.max_len = max_len
        self.level = level
        self.delta = delta
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_artifacts(cls, root: Path, seed: int = 0) -> RequestMix:
        """Items and interactions of the ``world``, the ``tree``, the ``sasrec`` vocabulary, the curation's level/δ."""
        world = resolve_artifact(root, WORLD_KIND)
        items = pd.read_parquet(world / "items.parquet", columns=["item_id", "impressions"])
        interactions = pd.read_parquet(world / "interactions.parquet")
        tree = ClusterTree.load(resolve_artifact(root, TREE_KIND))
        sasrec = SASRecArtifact.load(resolve_artifact(root, SASREC_KIND))
        parameters = read_manifest(resolve_artifact(root, CURATION_KIND)).get("parameters", {})
        items = items[items["item_id"].map(tree.__contains__) & (items["impressions"] > 0)]
        vocabulary_index = {item_id: i + 1 for i, item_id in enumerate(sasrec.vocabulary.item_ids)}
        return cls(
            items["item_id"].tolist(),
            items["impressions"].tolist(),
            held_out_sessions(interactions),
            tree,
            vocabulary_index,
            sasrec.config.max_len,
            level=int(parameters.get("level", DEFAULT_PLANNING_LEVEL)),
            delta=int(parameters.get("delta", 1)),
            seed=seed,
        )

    def restricted_to(self, item_ids: set[str]) -> RequestMix:
        """The same mix with context items limited to ``item_ids`` (e.g. the plan table's, for CACHE)."""
        keep = np.array([item_id in item_ids for item_id in self.item_ids])
        if not keep.any():
            raise ValueError("no context item of the mix is in the given set")
        return RequestMix(
            self.item_ids[keep].tolist(),
            (self.weights[keep]).tolist(),
            self.sessions,
            self.tree,
            self.vocabulary_index,
            self.max_len,
            self.level,
            self.delta,
            seed=int(self.rng.integers(2**31)),
        )

    # --- draws ---------------------------------------------------------------------------------------------
    def context_item(self) -> str:
        """A context item, drawn with probability proportional to its impressions."""
        return str(self.rng.choice(self.item_ids, p=self.weights))

    def context_items(self, count: int) -> list[str]:
        """``count`` context items drawn at once (one pass over the weights, not one per draw)."""
        return [str(item) for item in self.rng.choice(self.item_ids, size=count, p=self.weights)]

    def session(self) -> list[HeldOutEvent]:
        """A held-out session, drawn uniformly over users."""
        return self.sessions[int(self.rng.integers(len(self.sessions)))]

    def candidate_clusters(self, item_id: str) -> list[str]:
        """The item's serendipitous siblings at the planning level (what the Planner chooses from)."""
        return self.tree.siblings(self.tree.node_of(item_id, self.level), self.delta)

    def history(self, session: list[HeldOutEvent]) -> common_pb2.RecentHistory:
        """A session as the API's RecentHistory."""
        return common_pb2.RecentHistory(
            events=[
                common_pb2.HistoryEvent(item_id=e.item_id, timestamp_ms=e.timestamp_ms, satisfaction=e.satisfaction)
                for e in session
            ]
        )

    # --- requests ------------------------------------------------------------------------------------------
    def plan_request(self, num_clusters: int = 3) -> planner_pb2.PlanRequest:
        """Planner.Plan for a drawn context item and held-out history."""
        return planner_pb2.PlanRequest(
            context_item=common_pb2.ItemRef(item_id=self.context_item()),
            recent_history=self.history(self.session()),
            num_clusters=num_clusters,
        )

    def recommend_request(self, num_items: int = 10, num_clusters: int = 3) -> planner_pb2.RecommendRequest:
        """Planner.Recommend for a drawn context item and held-out history."""
        return planner_pb2.RecommendRequest(
            context_item=common_pb2.ItemRef(item_id=self.context_item()),
            recent_history=self.history(self.session()),
            num_items=num_items,
            num_clusters=num_clusters,
        )

    def retrieve_request(self, k: int = 10, num_clusters: int = 3) -> retriever_pb2.RetrieveRequest:
        """Retriever.Retrieve inside (up to) ``num_clusters`` serendipitous clusters of a drawn context item."""
        context = self.context_item()
        clusters = self.candidate_clusters(context)[:num_clusters]
        return retriever_pb2.RetrieveRequest(
            history=self.history(self.session()),
            cluster_ids=clusters,
            k=k,
            exclude_item_ids=[context],
            per_cluster_quota=-(-k // max(len(clusters), 1)),
        )

    def seqrec_history(self) -> np.ndarray:
        """[1, max_len] int64 left-padded model indices of a held-out session (the ``seqrec`` input)."""
        indices = [self.vocabulary_index[e.item_id] for e in self.session() if e.item_id in self.vocabulary_index]
        return np.asarray([left_pad(indices, self.max_len)], dtype=np.int64)


def describe(mix: RequestMix) -> dict[str, object]:
    """Size of the mix, for the report."""
    lengths = [len(s) for s in mix.sessions]
    return {
        "context_items": len(mix.item_ids),
        "held_out_sessions": len(mix.sessions),
        "mean_history_events": round(float(np.mean(lengths)), 2),
        "planning_level": mix.level,
        "delta": mix.delta,
    }
