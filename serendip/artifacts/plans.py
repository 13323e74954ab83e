"""The plan table: ranked serendipitous clusters per catalogue item, precomputed by batch inference.

Published as a versioned ``plans`` artifact (``artifacts/plans/<version>/plans.parquet`` + manifest,
``LATEST`` switched atomically); the Planner follows ``LATEST`` (``planner.plan_watcher``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.store import ArtifactWriter, read_manifest, resolve_artifact

PLANS_KIND = "plans"
SCHEMA_VERSION = 1
PLANS_FILE = "plans.parquet"
PLAN_COLUMNS = ["item_id", "rank", "cluster_id", "score", "reasoning"]
DEFAULT_TOP_N = 5
"""Clusters kept per item by batch planning, nearline planning and LIVE planning alike."""


@dataclass(frozen=True)
class CachedCluster:
    """One planned cluster of an item."""

    cluster_id: str
    score: float
    reasoning: str


def plans_from_rows(rows: Iterable[tuple[str, int, str, float, str | None]]) -> dict[str, list[CachedCluster]]:
    """item id -> clusters best first, from (item_id, rank, cluster_id, score, reasoning) tuples in any order.

    Plain Python (no DataFrame), so the Planner can fold a written batch in on its serving loop.
    """
    ranked: dict[str, list[tuple[int, CachedCluster]]] = {}
    for item_id, rank, cluster_id, score, reasoning in rows:
        ranked.setdefault(item_id, []).append((int(rank), CachedCluster(cluster_id, float(score), reasoning or "")))
    return {
        item_id: [cluster for _, cluster in sorted(pairs, key=lambda pair: pair[0])]
        for item_id, pairs in ranked.items()
    }


def plans_by_item(frame: pd.DataFrame) -> dict[str, list[CachedCluster]]:
    """item id -> clusters best first, from a table of PLAN_COLUMNS."""
    return plans_from_rows(frame[PLAN_COLUMNS].itertuples(index=False, name=None))


class PlanTable:
    """item id -> clusters best first, with the artifact version they came from."""

    def __init__(self, plans: Mapping[str, list[CachedCluster]], version: str) -> None:
        self.plans = dict(plans)
        self.version = version

    def __len__(self) -> int:
        return len(self.plans)

    def get(self, item_id: str) -> list[CachedCluster]:
        """The item's plan (empty when the item has none)."""
        return self.plans.get(item_id, [])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, version: str) -> PlanTable:
        """Build from rows of PLAN_COLUMNS."""
        return cls(plans_by_item(frame), version)

    @classmethod
    def load(cls, path: Path) -> PlanTable:
        """Load a plans artifact (version dir, kind dir following LATEST, or artifacts root)."""
        directory = resolve_artifact(path, PLANS_KIND)
        return cls.from_frame(pd.read_parquet(directory / PLANS_FILE), read_manifest(directory)["version"])


def plan_rows(item_id: str, clusters: Iterable[tuple[str, float, str | None]]) -> list[dict[str, Any]]:
    """Rows of the plan table for one item's ranked clusters."""
    return [
        {"item_id": item_id, "rank": rank, "cluster_id": cluster_id, "score": score, "reasoning": reasoning or ""}
        for rank, (cluster_id, score, reasoning) in enumerate(clusters)
    ]


def publish_plan_table(
    root: Path,
    rows: list[dict[str, Any]] | pd.DataFrame,
    parameters: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``rows`` as a new plans version under ``root`` and switch LATEST to it; returns the version dir.

    ``extra_tables`` (file name -> table) are written beside ``plans.parquet`` in the same atomic version (e.g.
    the batch job's ``processed.parquet``); ``counts`` are added to the manifest counts.
    """
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    with ArtifactWriter(root, PLANS_KIND, parameters, inputs=inputs or {}) as writer:
        frame.to_parquet(writer.dir / PLANS_FILE, index=False)
        for file_name, table in (extra_tables or {}).items():
            table.to_parquet(writer.dir / file_name, index=False)
        writer.counts.update(counts or {})
        writer.counts.update({"items": int(frame["item_id"].nunique()), "rows": len(frame)})
    return writer.final_dir
