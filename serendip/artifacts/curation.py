"""The ``curation`` artifact: serendipitous SFT examples and the tree they were curated with.

Written by ``serendip.jobs.curate`` (algorithm: ``serendip.offline.curation``). A version directory holds
one parquet file per table of :class:`Curation`, ``report.json`` and a copy of the tree (``tree/``), so a
consumer plans over exactly the clusters the examples name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import ConfigError
from serendip.core.frames import decode_frames, load_image
from serendip.core.prompts import NO_FRAMES, THUMBNAIL

CURATION_KIND = "curation"
SCHEMA_VERSION = 1


@dataclass
class Curation:
    """Result of :func:`curate`: examples (one row per kept (context, cluster)), SFT rows, and the report."""

    examples: pd.DataFrame
    sft: pd.DataFrame
    candidates: pd.DataFrame
    cluster_coverage: pd.DataFrame
    video_errors: pd.DataFrame
    clusters: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


CURATION_FILES = {
    "examples": "examples.parquet",
    "sft": "sft.parquet",
    "candidates": "candidates.parquet",
    "cluster_coverage": "cluster_coverage.parquet",
    "video_errors": "video_errors.parquet",
    "clusters": "clusters.parquet",
}


CURATION_TREE_DIR = "tree"


def save_curation(curation: Curation, tree: ClusterTree, directory: str | os.PathLike[str]) -> None:
    """Write every table of ``curation``, ``report.json`` and a copy of the tree (``tree/``) into ``directory``."""
    target = Path(directory)
    tree.save(target / CURATION_TREE_DIR)
    for name, filename in CURATION_FILES.items():
        getattr(curation, name).to_parquet(target / filename, index=False)
    (target / "report.json").write_text(json.dumps(curation.report, indent=2, default=str) + "\n")


@dataclass
class CurationArtifact:
    """A loaded curation artifact and the tree it was curated with."""

    dir: Path
    manifest: dict[str, Any]
    curation: Curation
    tree: ClusterTree

    def sft_examples(self, split: str = "train", variant: str = "video_cot", frames: str = "4") -> pd.DataFrame:
        """SFT rows of one split, prompt variant and frame mode ("none" for text_only, "1".."8", "thumbnail")."""
        sft = self.curation.sft
        chosen = sft[(sft["split"] == split) & (sft["variant"] == variant) & (sft["frames"] == frames)]
        if chosen.empty:
            raise ConfigError(f"no SFT rows for split={split!r} variant={variant!r} frames={frames!r}")
        return chosen.reset_index(drop=True)

    @property
    def allowed_descriptions(self) -> list[str]:
        """Every cluster description a planner may output (the controlled-generation vocabulary)."""
        return self.curation.clusters["description"].tolist()


def load_curation(path: str | os.PathLike[str] = "artifacts/curation") -> CurationArtifact:
    """Load a curation artifact (version dir or kind dir) with the copy of the tree it was curated with."""
    directory = resolve_artifact(path, CURATION_KIND)
    manifest = read_manifest(directory)
    tables = {name: pd.read_parquet(directory / filename) for name, filename in CURATION_FILES.items()}
    report = json.loads((directory / "report.json").read_text())
    tree = ClusterTree.load(directory / CURATION_TREE_DIR)
    return CurationArtifact(directory, manifest, Curation(**tables, report=report), tree)


def load_example_frames(row: Mapping[str, Any] | pd.Series) -> np.ndarray:
    """Pixels of one SFT row: the thumbnail JPEG (frames == "thumbnail" and a JPEG exists) or decoded frames."""
    if row["frames"] == NO_FRAMES:
        raise ConfigError(f"SFT row {row['example_id']} ({row['variant']}) has no frames")
    if row["frames"] == THUMBNAIL and row.get("image_path"):
        return load_image(row["image_path"])[None]
    return decode_frames(row["video_path"], list(row["frame_indices"]))
