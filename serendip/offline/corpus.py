"""Popular corpus: the smallest set of items whose impressions reach a coverage target (paper §3.2: 80 %).

Items are ranked by impressions (descending, ties by item id) and the shortest prefix whose impressions reach
``coverage * total`` is taken; any set of k items covers at most the k largest counts, so the prefix is a
smallest such set. The comparison is exact: ``coverage`` is read as the decimal it is written as
(``Fraction(str(0.7))``), so 0.7 of 10 impressions means 7, not 7.000000000000001.

Published as a ``corpus`` artifact: ``corpus.parquet`` (rank, item_id, impressions, cumulative_impressions,
cumulative_coverage) and the achieved coverage and item count in the manifest counts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serendip.artifacts.store import ArtifactWriter, resolve_artifact
from serendip.core.errors import ConfigError

CORPUS_KIND = "corpus"
CORPUS_FILE = "corpus.parquet"
DEFAULT_COVERAGE = 0.8


@dataclass(frozen=True)
class CorpusSelection:
    """The selected items, best first, and what they cover."""

    table: pd.DataFrame
    """rank, item_id, impressions, cumulative_impressions, cumulative_coverage (one row per selected item)."""
    coverage_target: float
    impressions_total: int
    catalogue_items: int

    @property
    def item_ids(self) -> list[str]:
        """Selected item ids, most impressions first."""
        return self.table["item_id"].tolist()

    @property
    def impressions_covered(self) -> int:
        """Impressions of the selected items."""
        return int(self.table["impressions"].sum())

    @property
    def coverage_achieved(self) -> float:
        """Fraction of all impressions the selected items received (1.0 for a catalogue without impressions)."""
        return self.impressions_covered / self.impressions_total if self.impressions_total else 1.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (also the manifest counts of the published artifact)."""
        return {
            "items": len(self.table),
            "catalogue_items": self.catalogue_items,
            "coverage_target": self.coverage_target,
            "coverage_achieved": round(self.coverage_achieved, 6),
            "impressions_covered": self.impressions_covered,
            "impressions_total": self.impressions_total,
        }


def select_popular(items: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> CorpusSelection:
    """The smallest item set (by impressions) covering at least ``coverage`` of all impressions.

    ``items`` needs ``item_id`` (unique) and ``impressions`` (non-negative integers), as validated by
    ``serendip.core.schema.load_items``. Items with zero impressions are never needed, so coverage 1.0 selects
    exactly the items with impressions.
    """
    if not 0 < coverage <= 1:
        raise ConfigError(f"coverage must be in (0, 1], got {coverage}")
    missing = {"item_id", "impressions"} - set(items.columns)
    if missing:
        raise ConfigError(f"items lack column(s) {sorted(missing)} needed for corpus selection")
    if items["item_id"].duplicated().any():
        raise ConfigError("item ids must be unique for corpus selection")
    impressions = items["impressions"].astype("int64")
    if (impressions < 0).any():
        raise ConfigError("impressions must be non-negative")
    ranked = (
        pd.DataFrame({"item_id": items["item_id"].astype(str), "impressions": impressions})
        .sort_values(["impressions", "item_id"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    total = int(ranked["impressions"].sum())
    ranked["cumulative_impressions"] = ranked["impressions"].cumsum()
    # integer impressions reach coverage * total exactly when they reach its ceiling
    needed = math.ceil(Fraction(str(coverage)) * total)
    count = int(np.searchsorted(ranked["cumulative_impressions"].to_numpy(), needed, side="left")) + 1 if total else 0
    table = ranked.head(count).copy()
    table.insert(0, "rank", range(len(table)))
    table["cumulative_coverage"] = table["cumulative_impressions"] / total if total else 1.0
    return CorpusSelection(table.reset_index(drop=True), coverage, total, len(items))


def publish_corpus(root: str | os.PathLike[str], selection: CorpusSelection, inputs: dict[str, Any]) -> Path:
    """Write ``selection`` as a new ``corpus`` version under ``root``; returns the version dir."""
    with ArtifactWriter(Path(root), CORPUS_KIND, {"coverage": selection.coverage_target}, inputs=inputs) as writer:
        selection.table.to_parquet(writer.dir / CORPUS_FILE, index=False)
        writer.counts.update(selection.summary())
    return writer.final_dir


def load_corpus_ids(path: str | os.PathLike[str]) -> tuple[list[str], Path]:
    """Item ids of a corpus artifact (version dir, kind dir or artifacts root) and its version dir."""
    directory = resolve_artifact(path, CORPUS_KIND)
    return pd.read_parquet(directory / CORPUS_FILE, columns=["item_id"])["item_id"].tolist(), directory
