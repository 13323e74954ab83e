"""A job's catalogue input: a ``world`` artifact or your own items (and interactions), with the records naming them.

Every job that reads a catalogue (tree, curation, popular corpus, frame decoding) takes the same options, finds
the same default and records the same manifest inputs, so lineage reads the same whichever way the catalogue came
in. Default (neither ``--world`` nor ``--items``): ``<artifacts>/world`` when it exists, else your catalogue
imported into the artifacts root, ``<artifacts>/items.parquet`` (with ``<artifacts>/interactions.parquet`` when
present); a ``--world`` directory without a manifest that holds an ``items.parquet`` is read the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.store import MANIFEST_NAME, file_sha256, input_record
from serendip.artifacts.world import WORLD_KIND, World, load_world
from serendip.core.errors import ArtifactError
from serendip.core.schema import BadRowReport, load_dataset

IMPORTED_ITEMS = "items.parquet"
IMPORTED_INTERACTIONS = "interactions.parquet"


@dataclass(frozen=True)
class CatalogueSource:
    """The catalogue options of a job (one of): a world artifact or your items (and interactions)."""

    world: Path | None = None
    """world artifact: version or kind dir (None: <artifacts>/world, else <artifacts>/items.parquet)"""
    items: Path | None = None
    """your items.parquet (see docs/data.md for the schema)"""
    interactions: Path | None = None
    """your interactions.parquet (with --items); also counts impressions when the items have none"""
    media_root: Path | None = None
    """base of relative video/thumbnail paths (None: the items' dir)"""

    def __post_init__(self) -> None:
        if self.world is not None and self.items is not None:
            raise ValueError("give --world or --items, not both")
        if self.interactions is not None and self.items is None:
            raise ValueError("--interactions goes with --items (a world brings its own)")

    def resolve(self, artifacts: Path) -> CatalogueSource:
        """This source with the default filled in: a world artifact, or your imported items (see the module doc)."""
        if self.items is not None:
            return self
        if self.world is not None:
            return self._imported(self.world) or self
        if (artifacts / WORLD_KIND).exists():
            return CatalogueSource(world=artifacts / WORLD_KIND, media_root=self.media_root)
        imported = self._imported(artifacts)
        if imported is None:
            raise ArtifactError(
                f"{artifacts} holds no catalogue: no world artifact ({artifacts / WORLD_KIND}) and no imported "
                f"{IMPORTED_ITEMS}; run python -m serendip.jobs.make_world --artifacts {artifacts}, put your "
                f"{IMPORTED_ITEMS} (and {IMPORTED_INTERACTIONS}) there, or pass --world DIR or --items FILE "
                f"(docs/data.md §1)"
            )
        return imported

    def _imported(self, directory: Path) -> CatalogueSource | None:
        """Your catalogue in ``directory`` (an items.parquet and no manifest), or None."""
        items = directory / IMPORTED_ITEMS
        if not items.is_file() or (directory / MANIFEST_NAME).is_file():
            return None
        interactions = directory / IMPORTED_INTERACTIONS
        found = interactions if interactions.is_file() else None
        return CatalogueSource(items=items, interactions=found, media_root=self.media_root)


@dataclass
class Catalogue:
    """Validated items (and interactions, when there are any), their bad-row reports and the input records."""

    items: pd.DataFrame
    interactions: pd.DataFrame | None
    reports: tuple[BadRowReport, ...]
    inputs: dict[str, Any]
    world: World | None = None
    """The world artifact, when the catalogue is one (its ground truth, captions, manifest)."""

    def summary(self) -> str:
        """One console line per table (``BadRowReport.summary``)."""
        return "\n".join(report.summary() for report in self.reports)


def open_catalogue(source: CatalogueSource, artifacts: Path) -> Catalogue:
    """The validated catalogue of ``source`` (default: see the module docstring)."""
    source = source.resolve(artifacts)
    if source.items is None:
        world = load_world(source.world)
        reports = (world.items_report, world.interactions_report)
        return Catalogue(world.items, world.interactions, reports, {"world": input_record(world.dir)}, world)
    dataset = load_dataset(source.items, source.interactions, source.media_root)
    inputs = {"items": {"path": str(source.items), "sha256": file_sha256(source.items)}}
    if source.interactions is None:
        return Catalogue(dataset.items, None, (dataset.items_report,), inputs)
    inputs["interactions"] = {"path": str(source.interactions), "sha256": file_sha256(source.interactions)}
    reports = (dataset.items_report, dataset.interactions_report)
    return Catalogue(dataset.items, dataset.interactions, reports, inputs)


def load_catalogue(source: CatalogueSource, artifacts: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validated items of ``source`` and the input record naming them; the bad-row summary goes to the log."""
    catalogue = open_catalogue(source, artifacts)
    logging.getLogger(__name__).info(catalogue.summary())
    return catalogue.items, catalogue.inputs
