"""The ``corpus`` artifact: the popular corpus the batch jobs decode and plan (``serendip.jobs.popular_corpus``).

A version directory holds ``corpus.parquet`` (rank, item_id, impressions, cumulative_impressions,
cumulative_coverage); the manifest counts carry the achieved coverage and item count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.store import ArtifactWriter, resolve_artifact

CORPUS_KIND = "corpus"
SCHEMA_VERSION = 1
CORPUS_FILE = "corpus.parquet"


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
