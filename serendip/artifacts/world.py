"""The ``world`` artifact: a synthetic catalogue with its logs and ground truth (``serendip.jobs.make_world``).

A version directory holds ``items.parquet`` and ``interactions.parquet`` (the input schema of
``serendip.core.schema``), ``users.parquet``, ``ground_truth.parquet`` (true clusters, affine/secondary
clusters, visual richness and captions), ``true_tree/``, and, with videos, ``media.parquet`` plus
``videos/`` and ``thumbnails/``. :class:`WorldOracle` reads the ground truth as the generator meant it.

Worlds with *fresh uploads* also hold ``fresh_items.parquet`` (items schema; media in ``fresh_videos/`` and
``fresh_thumbnails/``), ``fresh_ground_truth.parquet`` and ``fresh_media.parquet``: items created after the
logs end, in no other table. Only :func:`load_fresh_uploads` reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.core.cluster_tree import ClusterTree, level_column
from serendip.core.schema import BadRowReport, load_dataset, load_items

SCHEMA_VERSION = 1
WORLD_KIND = "world"
WORLD_LEVELS = 4
AFFINITY_LEVEL = 3
"""Affinity and serendipity in the world's ground truth are defined at level 3 with δ = 1."""
RELATIONS = ("affine", "secondary", "same", "serendipitous", "random")
FRESH_ITEMS_FILE = "fresh_items.parquet"
"""Fresh uploads: items created after the logs end, in the items schema; in no other table of the world."""
FRESH_GROUND_TRUTH_FILE = "fresh_ground_truth.parquet"
FRESH_MEDIA_FILE = "fresh_media.parquet"
FRESH_VIDEOS = "fresh_videos"
FRESH_THUMBNAILS = "fresh_thumbnails"


@dataclass(frozen=True)
class SatisfactionModel:
    """Mean satisfaction per relation of (context, next) items; draws add ``noise_sd`` Gaussian noise."""

    affine_base: float = 0.72
    affine_richness_gain: float = 0.16
    secondary_drop: float = 0.08
    same_cluster: float = 0.62
    other_serendipitous: float = 0.40
    random: float = 0.22
    interest_bonus: float = 0.06
    noise_sd: float = 0.08

    def mean(self, relation: str, context_richness: float, interested: bool = False) -> float:
        """Expected satisfaction of a transition with this relation (see RELATIONS)."""
        affine = self.affine_base + self.affine_richness_gain * context_richness
        base = {
            "affine": affine,
            "secondary": affine - self.secondary_drop,
            "same": self.same_cluster,
            "serendipitous": self.other_serendipitous,
            "random": self.random,
        }[relation]
        return base + (self.interest_bonus if interested else 0.0)


class WorldOracle:
    """Ground-truth satisfaction of the world: relation of two items and the expected satisfaction."""

    def __init__(self, ground_truth: pd.DataFrame, model: SatisfactionModel | None = None) -> None:
        self.model = model or SatisfactionModel()
        records = ground_truth.set_index("item_id")
        self._level2 = records[level_column(2)].to_dict()
        self._level3 = records[level_column(AFFINITY_LEVEL)].to_dict()
        self._affine = records["affine_cluster"].to_dict()
        self._secondary = records["secondary_cluster"].to_dict()
        self._richness = records["visual_richness"].to_dict()

    def relation(self, context_item_id: str, next_item_id: str) -> str:
        """One of RELATIONS, judged with the true taxonomy at level 3, δ = 1."""
        target = self._level3[next_item_id]
        if target == self._level3[context_item_id]:
            return "same"
        if self._level2[next_item_id] != self._level2[context_item_id]:
            return "random"
        if target == self._affine[context_item_id]:
            return "affine"
        return "secondary" if target == self._secondary[context_item_id] else "serendipitous"

    def expected_satisfaction(self, context_item_id: str, next_item_id: str, interested: bool = False) -> float:
        """Mean satisfaction (before noise) of watching ``next_item_id`` after ``context_item_id``."""
        relation = self.relation(context_item_id, next_item_id)
        return self.model.mean(relation, self._richness[context_item_id], interested)

    def good_clusters(self, item_id: str) -> list[str]:
        """True level-3 clusters that are the best serendipitous moves after ``item_id``."""
        secondary = self._secondary[item_id]
        return [self._affine[item_id]] + ([secondary] if secondary else [])


@dataclass
class World:
    """A loaded world artifact: validated items/interactions plus the generator's ground truth."""

    dir: Path
    manifest: dict[str, Any]
    items: pd.DataFrame
    interactions: pd.DataFrame
    users: pd.DataFrame
    ground_truth: pd.DataFrame
    true_tree: ClusterTree
    items_report: BadRowReport
    interactions_report: BadRowReport

    @property
    def oracle(self) -> WorldOracle:
        """Ground-truth satisfaction model of this world."""
        return WorldOracle(self.ground_truth, SatisfactionModel(**self.manifest["parameters"]["satisfaction"]))

    @property
    def captions(self) -> dict[str, str]:
        """item_id -> what its video shows, in words (the chain-of-thought text)."""
        return dict(zip(self.ground_truth["item_id"], self.ground_truth["visual_caption"], strict=True))


def load_world(path: str | os.PathLike[str] = "artifacts/world") -> World:
    """Load a world artifact (a version dir, or a kind dir whose LATEST is used)."""
    directory = resolve_artifact(path, WORLD_KIND)
    dataset = load_dataset(directory / "items.parquet", directory / "interactions.parquet")
    return World(
        dir=directory,
        manifest=read_manifest(directory),
        items=dataset.items,
        interactions=dataset.interactions,
        users=pd.read_parquet(directory / "users.parquet"),
        ground_truth=pd.read_parquet(directory / "ground_truth.parquet"),
        true_tree=ClusterTree.load(directory / "true_tree"),
        items_report=dataset.items_report,
        interactions_report=dataset.interactions_report,
    )


@dataclass
class FreshUploads:
    """A world's fresh uploads: validated items (media paths resolved) and their ground truth."""

    items: pd.DataFrame
    ground_truth: pd.DataFrame


def load_fresh_uploads(path: str | os.PathLike[str] = "artifacts/world") -> FreshUploads | None:
    """The fresh uploads of a world artifact (version or kind dir); None when it has none (older worlds)."""
    directory = resolve_artifact(path, WORLD_KIND)
    if not (directory / FRESH_ITEMS_FILE).is_file():
        return None
    items, _report = load_items(directory / FRESH_ITEMS_FILE)
    return FreshUploads(items, pd.read_parquet(directory / FRESH_GROUND_TRUTH_FILE))
