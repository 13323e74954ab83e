"""The plan table: ranked serendipitous clusters per catalogue item, precomputed by batch inference.

Published as a versioned ``plans`` artifact (``artifacts/plans/<version>/`` + manifest, ``LATEST`` switched
atomically): ``plans.parquet`` (the rows, for jobs) and ``plans.arrow`` (the same plans in the serving layout of
``serendip.artifacts.plan_index``, which the Planner memory-maps). The Planner follows ``LATEST``
(``planner.plan_watcher``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serendip.artifacts.plan_index import (
    CachedCluster,
    PlanIndex,
    build_serving_batch,
    open_serving_file,
    write_serving_file,
)
from serendip.artifacts.store import ArtifactWriter, read_manifest, resolve_artifact

PLANS_KIND = "plans"
SCHEMA_VERSION = 1
PLANS_FILE = "plans.parquet"
SERVING_FILE = "plans.arrow"
PLAN_COLUMNS = ["item_id", "rank", "cluster_id", "score", "reasoning"]
PLAN_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("rank", pa.int64()),
        ("cluster_id", pa.string()),
        ("score", pa.float64()),
        ("reasoning", pa.string()),
    ]
)
MEMO_ITEMS = 4096
"""Items whose decoded plans a PlanTable keeps (a few MB; emptied when full)."""
DEFAULT_TOP_N = 5
"""Clusters kept per item by batch planning, nearline planning and LIVE planning alike."""


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
    """item id -> clusters best first, with the artifact version they came from.

    Backed by a ``PlanIndex``: memory-mapped ``plans.arrow`` for versions that have it, else the same layout
    built in memory from ``plans.parquet`` (versions published before it, and ``from_frame``).
    """

    def __init__(self, index: PlanIndex, version: str) -> None:
        self.index = index
        self.version = version
        self._memo: dict[str, list[CachedCluster]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[str]:
        """Item ids that have a plan."""
        return iter(self.index)

    def get(self, item_id: str) -> list[CachedCluster]:
        """The item's plan (empty when the item has none); callers must not change the list.

        Lists built for the last (up to) MEMO_ITEMS items asked for are kept and handed out again: ranking-stack
        traffic is dominated by popular items, and a dict hit costs a tenth of decoding the item from the index.
        """
        entries = self._memo.get(item_id)
        if entries is None:
            entries = self.index.lookup(item_id)
            if len(self._memo) >= MEMO_ITEMS:
                self._memo.clear()
            self._memo[item_id] = entries
        return entries

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, version: str) -> PlanTable:
        """Build from rows of PLAN_COLUMNS."""
        return cls(PlanIndex(build_serving_batch(_plan_table(frame))), version)

    @classmethod
    def load(cls, path: Path) -> PlanTable:
        """Load a plans artifact (version dir, kind dir following LATEST, or artifacts root)."""
        directory = resolve_artifact(path, PLANS_KIND)
        version = read_manifest(directory)["version"]
        serving = open_serving_file(directory / SERVING_FILE) if (directory / SERVING_FILE).is_file() else None
        if serving is None:
            serving = build_serving_batch(pq.read_table(directory / PLANS_FILE, columns=PLAN_COLUMNS))
        return cls(PlanIndex(serving), version)


def _plan_table(rows: list[dict[str, Any]] | pd.DataFrame | pa.Table) -> pa.Table:
    """Plan rows as an Arrow table of PLAN_COLUMNS."""
    if not isinstance(rows, pa.Table):
        rows = pa.Table.from_pandas(pd.DataFrame(rows, columns=PLAN_COLUMNS), preserve_index=False)
    return rows.select(PLAN_COLUMNS).cast(PLAN_SCHEMA)


def plan_rows(item_id: str, clusters: Iterable[tuple[str, float, str | None]]) -> list[dict[str, Any]]:
    """Rows of the plan table for one item's ranked clusters."""
    return [
        {"item_id": item_id, "rank": rank, "cluster_id": cluster_id, "score": score, "reasoning": reasoning or ""}
        for rank, (cluster_id, score, reasoning) in enumerate(clusters)
    ]


def publish_plan_table(
    root: Path,
    rows: list[dict[str, Any]] | pd.DataFrame | pa.Table,
    parameters: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``rows`` as a new plans version under ``root`` and switch LATEST to it; returns the version dir.

    Writes ``plans.parquet`` and its serving layout ``plans.arrow``. ``extra_tables`` (file name -> table) are
    written beside them in the same atomic version (e.g. the batch job's ``processed.parquet``); ``counts`` are
    added to the manifest counts.
    """
    table = _plan_table(rows)
    serving = build_serving_batch(table)
    with ArtifactWriter(root, PLANS_KIND, parameters, inputs=inputs or {}) as writer:
        pq.write_table(table, writer.dir / PLANS_FILE)
        write_serving_file(serving, writer.dir / SERVING_FILE)
        for file_name, extra in (extra_tables or {}).items():
            extra.to_parquet(writer.dir / file_name, index=False)
        writer.counts.update(counts or {})
        writer.counts.update({"items": serving.num_rows, "rows": table.num_rows})
    return writer.final_dir
