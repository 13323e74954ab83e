"""SFT examples with their pixels, read from the curation artifact (``serendip.jobs.curate``).

One :class:`SftExample` per curated SFT row of the chosen prompt variant and frame mode: the prompt and target
texts exactly as curated, the label cluster, and the pixels decoded with the data layer's single frame sampler
(``serendip.offline.curation.load_example_frames``: the row's frame indices, or its thumbnail JPEG).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from serendip.artifacts.curation import CurationArtifact, load_example_frames
from serendip.core.errors import DataError
from serendip.models.mllm.errors import TrainingDataError
from serendip.models.mllm.prompts import PromptVariant, VisualSetting, frame_mode


@dataclass(frozen=True)
class SftExample:
    """One supervised example: prompt and target texts, the label, and the context's pixels (if any)."""

    example_id: str
    context_item_id: str
    label_cluster_id: str
    prompt: str
    target: str
    pixels: np.ndarray | None = None
    """(n, H, W, 3) uint8 sampled frames, or (H, W, 3) for a thumbnail; None for text-only prompts."""


@dataclass(frozen=True)
class PlanningTask:
    """What the grammar and baselines need besides the examples: clusters, levels and candidates."""

    descriptions: dict[str, str]
    """Planning-level cluster id -> description (the controlled-generation vocabulary)."""
    level: int
    delta: int
    context_cluster_of: dict[str, str]
    """Context item -> its planning-level cluster."""
    serendipitous_candidates: dict[str, list[str]]
    """Planning-level cluster -> its serendipitous candidates (other children of its level-(l-δ) parent)."""


def planning_task(curation: CurationArtifact) -> PlanningTask:
    """Clusters, levels and serendipitous candidates of a curation artifact (its own copy of the tree)."""
    parameters = curation.manifest.get("parameters", {})
    level = int(parameters.get("level", 3))
    delta = int(parameters.get("delta", 1))
    tree = curation.tree
    clusters = curation.curation.clusters
    examples = curation.curation.examples
    return PlanningTask(
        descriptions=dict(zip(clusters["cluster_id"], clusters["description"], strict=True)),
        level=level,
        delta=delta,
        context_cluster_of=dict(zip(examples["context_item_id"], examples["context_cluster_id"], strict=True)),
        serendipitous_candidates={cluster: tree.siblings(cluster, delta) for cluster in tree.nodes_at(level)},
    )


def load_sft_examples(
    curation: CurationArtifact,
    split: str,
    variant: PromptVariant,
    visual: VisualSetting,
    limit: int | None = None,
    progress: bool = False,
) -> list[SftExample]:
    """SFT examples of one split ("train" / "heldout") for a variant and frame setting, pixels decoded."""
    try:
        rows = curation.sft_examples(split=split, variant=str(variant), frames=frame_mode(variant, visual))
    except DataError as error:
        raise TrainingDataError(f"{curation.dir}: {error}") from error
    if limit is not None:
        rows = rows.head(limit)
    examples = []
    cache: dict[tuple[str, str], np.ndarray] = {}
    for row in tqdm(rows.to_dict("records"), desc=f"frames {split}", unit="ex", disable=not progress):
        pixels = None
        if variant.uses_video:
            key = (row["context_item_id"], row["frames"])
            if key not in cache:
                cache[key] = _decode(row)
            pixels = cache[key][0] if visual.thumbnail else cache[key]
        examples.append(
            SftExample(
                example_id=row["example_id"],
                context_item_id=row["context_item_id"],
                label_cluster_id=row["label_cluster_id"],
                prompt=row["prompt"],
                target=row["target"],
                pixels=pixels,
            )
        )
    return examples


def _decode(row: Mapping[str, object]) -> np.ndarray:
    try:
        return load_example_frames(row)
    except DataError as error:
        raise TrainingDataError(f"SFT row {row['example_id']}: {error}") from error
