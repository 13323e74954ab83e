"""A job's catalogue input: a ``world`` artifact or a user's ``items.parquet``, with the record naming it.

Every job that reads a catalogue (popular corpus, frame decoding) takes the same options and records
the same manifest input, so lineage reads the same whichever way the catalogue came in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.store import file_sha256, input_record
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.core.schema import load_items


@dataclass(frozen=True)
class CatalogueSource:
    """The catalogue options of a job (one of): a world artifact or your items."""

    world: Path | None = None
    """world artifact: version or kind dir (None: <artifacts>/world unless --items)"""
    items: Path | None = None
    """your items.parquet (see docs/data.md for the schema)"""
    media_root: Path | None = None
    """base of relative video/thumbnail paths (None: the items' dir)"""

    def __post_init__(self) -> None:
        if self.world is not None and self.items is not None:
            raise ValueError("give --world or --items, not both")


def load_catalogue(source: CatalogueSource, artifacts: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validated items of ``source`` (default: the newest world in ``artifacts``) and the input record naming them."""
    if source.items is not None:
        items, report = load_items(source.items, source.media_root)
        inputs = {"items": {"path": str(source.items), "sha256": file_sha256(source.items)}}
    else:
        world = load_world(source.world or artifacts / WORLD_KIND)
        items, report = world.items, world.items_report
        inputs = {"world": input_record(world.dir)}
    if report.rows_dropped:
        logging.getLogger(__name__).warning(report.summary())
    return items, inputs
