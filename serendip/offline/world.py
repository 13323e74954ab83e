"""Synthetic micro-video world: a 4-level taxonomy, real mp4s, titles, users, sessions and ground truth.

Visual code of an item: each level paints a region whose area shrinks with depth, so colour statistics of
the frames are closer for items that share more levels (see docs/data.md for the rationale)::

    +-----------------+      top half (50 %)            level-1 node: a dark colour (TOP_COLOURS)
    |  top   [accent] |      bottom-left + rest (37.5 %) level-2 node: a light colour (BOTTOM_COLOURS)
    +--------+--------+      block (12.5 %)             level-3 node: a saturated colour (SIGNATURE_COLOURS)
    | bottom | blk|   |      block position             level-4 node: left/right/top/bottom half of the
    +--------+--------+                                  bottom-right quadrant (LAYOUTS)

* the *accent*: a strip of the top half painted, during a window of frames, in the signature colour of the
  item's affine serendipitous cluster (a sibling level-3 node); some items have a second accent (other
  strip, other window) for a second affine cluster. Window length and colour strength grow with the item's
  ``visual_richness``;
* a small moving square of random colour: irrelevant motion (and unique bytes per video).

Titles name the item's topic words at all four levels, except a vague fraction (no topic word) and a
misleading fraction (the words of a sibling level-3 node). The accent is never in the title, so only a
model that looks at the video can tell which sibling cluster is a good serendipitous move.

Satisfaction of a transition context -> next (mean, before noise): affine serendipitous (highest, more for
visually rich contexts) > same level-3 cluster > other serendipitous > random (paper §2's observation).

*Fresh uploads* (``fresh_uploads``, 100 by default): items created after the last logged event, generated
like the others but from their own random stream and written apart (``fresh_items.parquet``,
``fresh_ground_truth.parquet``, ``fresh_videos/``): no interactions, so no tree, SASRec vocabulary or plan
table holds them -- the cold-start segment of the offline evaluation. The logged world does not depend on them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from serendip.artifacts.store import ArtifactWriter, file_sha256
from serendip.artifacts.world import (
    AFFINITY_LEVEL,
    FRESH_GROUND_TRUTH_FILE,
    FRESH_ITEMS_FILE,
    FRESH_MEDIA_FILE,
    FRESH_THUMBNAILS,
    FRESH_VIDEOS,
    WORLD_KIND,
    WORLD_LEVELS,
    SatisfactionModel,
    WorldOracle,
)
from serendip.core.cluster_tree import ClusterNode, ClusterTree, level_column, path_node_id
from serendip.core.errors import ConfigError
from serendip.core.frames import encode_video, save_jpeg, select_thumbnail_index
from serendip.core.parallel import map_tasks
from serendip.offline.vocabulary import (
    BOTTOM_COLOURS,
    INFORMATIVE_TITLE_TEMPLATES,
    LAYOUTS,
    SIGNATURE_COLOURS,
    TOP_COLOURS,
    TOPIC_ADJECTIVES,
    TOPIC_NOUNS,
    VAGUE_TITLES,
)

WORLD_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of :func:`generate_world`; every draw is determined by ``seed``."""

    num_items: int = 2000
    num_users: int = 1500
    branching: tuple[int, int, int, int] = (3, 3, 4, 2)
    seed: int = 0
    frame_size: int = 64
    fps: int = 8
    num_frames: int = 24
    with_video: bool = True
    thumbnail_only: bool = False
    """Write each item's JPEG thumbnail (the frame ``select_thumbnail_index`` picks from its rendered frames) but
    no mp4: items get a ``thumbnail_path`` and no ``video_path`` (the ``thumbnail`` preset; needs ``with_video``)."""
    include_taxonomy: bool = False
    vague_title_fraction: float = 0.2
    misleading_title_fraction: float = 0.1
    secondary_affinity_fraction: float = 0.3
    sessions_per_user: float = 3.0
    session_length: float = 8.0
    transition_probs: tuple[float, float, float] = (0.45, 0.35, 0.20)
    """Probabilities that a session's next item is from the same level-3 cluster / a sibling / anywhere."""
    visual_noise: float = 0.0
    """Fraction of items painted with the visual code of a random leaf instead of their own (0: every video
    shows its item's cluster)."""
    tags_per_item: int = 0
    """Tags per item (0: no ``tags`` column); each is a topic word of the item's level-2..4 nodes, or noise."""
    tag_noise: float = 0.0
    """Probability that a tag is the topic word of a random level-3 node instead of one of the item's own."""
    zipf_exponent: float = 1.0
    max_impressions: int = 1_000_000
    days: int = 30
    workers: int = 2
    satisfaction: SatisfactionModel = field(default_factory=SatisfactionModel)
    fresh_uploads: int = 100
    """Videos uploaded after the logs end (the training cut-off), written apart (``fresh_items.parquet``,
    ``fresh_videos/``): in no log, tree or model vocabulary. Drawn from their own random stream, so the
    logged world is the same for every count (0: none)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first parameter out of range."""
        if len(self.branching) != WORLD_LEVELS or min(self.branching) < 1:
            raise ConfigError(f"branching must be 4 positive ints, got {self.branching}")
        b1, b2, b3, b4 = self.branching
        limits = (len(TOP_COLOURS), len(BOTTOM_COLOURS), len(SIGNATURE_COLOURS), len(LAYOUTS))
        for level, (width, limit) in enumerate(zip(self.branching, limits, strict=True), start=1):
            if width > limit:
                raise ConfigError(f"branching level {level} is {width}; the visual code allows at most {limit}")
        if b3 < 2:
            raise ConfigError(f"branching level 3 must be >= 2 (an item needs a sibling cluster), got {b3}")
        leaves = b1 * b2 * b3 * b4
        if self.num_items < leaves:
            raise ConfigError(f"num_items={self.num_items} < {leaves} leaves; every leaf needs an item")
        if self.frame_size % 4 or not 16 <= self.frame_size <= 256:
            raise ConfigError(f"frame_size must be a multiple of 4 in 16..256, got {self.frame_size}")
        if self.num_frames < 4:
            raise ConfigError(f"num_frames must be >= 4, got {self.num_frames}")
        if not 0 <= self.vague_title_fraction + self.misleading_title_fraction <= 1:
            raise ConfigError("vague_title_fraction + misleading_title_fraction must be in [0, 1]")
        if not 0 <= self.visual_noise <= 1 or not 0 <= self.tag_noise <= 1 or self.tags_per_item < 0:
            raise ConfigError("visual_noise and tag_noise must be in [0, 1] and tags_per_item >= 0")
        if abs(sum(self.transition_probs) - 1) > 1e-9 or min(self.transition_probs) < 0:
            raise ConfigError(
                f"transition_probs must be 3 non-negative numbers summing to 1, got {self.transition_probs}"
            )
        if self.num_users < 1 or self.sessions_per_user < 1 or self.session_length < 2:
            raise ConfigError("num_users >= 1, sessions_per_user >= 1 and session_length >= 2 are required")
        if self.fresh_uploads < 0:
            raise ConfigError(f"fresh_uploads must be >= 0, got {self.fresh_uploads}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (for manifests); ``thumbnail_only`` only when set, so the parameters (and the
        version names) of worlds with videos stay as they were before the field existed."""
        parameters = asdict(self)
        if not self.thumbnail_only:
            del parameters["thumbnail_only"]
        return parameters


WORLD_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "hard": {
        "vague_title_fraction": 0.7,
        "misleading_title_fraction": 0.2,
        "visual_noise": 0.85,
        "tags_per_item": 3,
        "tag_noise": 0.5,
    },
    "thumbnail": {"thumbnail_only": True},
}
"""Named overrides of :class:`WorldConfig`. ``hard``: 70 % vague and 20 % misleading titles, 85 % of videos
painted like a random leaf, and 3 tags per item of which half on average are noise -- the clusters show
reliably only in co-engagement, and partly in the tags (the real-catalogue case the tree builder must handle).
``thumbnail``: the default world with a JPEG poster per item and no video (a catalogue of images): the same
draws, so the same items, titles, logs and thumbnail pixels as ``default``."""


# --- taxonomy -----------------------------------------------------------------------------------------------
def _topic_words(count: int, rng: np.random.Generator) -> list[str]:
    nouns = list(rng.permutation(TOPIC_NOUNS))
    if count <= len(nouns):
        return nouns[:count]
    compounds = [f"{adjective} {noun}" for adjective in TOPIC_ADJECTIVES for noun in TOPIC_NOUNS]
    extra = list(rng.permutation(compounds))
    if count > len(nouns) + len(extra):
        raise ConfigError(f"the world needs {count} topic words; at most {len(nouns) + len(extra)} exist")
    return nouns + extra[: count - len(nouns)]


def build_taxonomy(
    branching: tuple[int, ...], rng: np.random.Generator
) -> tuple[list[ClusterNode], dict[str, tuple[int, ...]]]:
    """True taxonomy: nodes (description = a unique topic word) and each node's index path."""
    paths: list[tuple[int, ...]] = []
    frontier: list[tuple[int, ...]] = [()]
    for width in branching:
        frontier = [parent + (index,) for parent in frontier for index in range(width)]
        paths.extend(frontier)
    words = _topic_words(len(paths), rng)
    nodes = [
        ClusterNode(path_node_id(path), len(path), path_node_id(path[:-1]) if len(path) > 1 else None, word)
        for path, word in zip(paths, words, strict=True)
    ]
    return nodes, {node.node_id: path for node, path in zip(nodes, paths, strict=True)}


# --- visual code --------------------------------------------------------------------------------------------
def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: int = 6) -> list[int]:
    return [int(np.clip(value + rng.integers(-amount, amount + 1), 0, 255)) for value in colour]


def _blend(colour: Sequence[int], background: Sequence[int], strength: float) -> list[int]:
    return [round(strength * c + (1 - strength) * b) for c, b in zip(colour, background, strict=True)]


def _block_slices(layout: str, size: int) -> tuple[slice, slice]:
    """(rows, columns) of the block: one half of the bottom-right quadrant."""
    half, quarter = size // 2, size // 4
    rows, cols = slice(half, size), slice(half, size)
    if layout == "left":
        return rows, slice(half, half + quarter)
    if layout == "right":
        return rows, slice(half + quarter, size)
    if layout == "top":
        return slice(half, half + quarter), cols
    return slice(half + quarter, size), cols


def _accent_slices(slot: int, size: int) -> tuple[slice, slice]:
    """(rows, columns) of accent strip ``slot`` (0: left, 1: right) in the top half."""
    quarter = size // 4
    cols = slice(0, quarter) if slot == 0 else slice(size - quarter, size)
    return slice(0, size // 2), cols


def render_frames(spec: dict[str, Any], size: int, num_frames: int) -> np.ndarray:
    """Draw an item's frames from its visual spec: (num_frames, size, size, 3) uint8 RGB."""
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    frames[:, : size // 2] = spec["top_rgb"]
    frames[:, size // 2 :] = spec["bottom_rgb"]
    rows, cols = _block_slices(spec["layout"], size)
    frames[:, rows, cols] = spec["block_rgb"]
    for accent in spec["accents"]:
        rows, cols = _accent_slices(accent["slot"], size)
        frames[accent["start"] : accent["end"], rows, cols] = accent["rgb"]
    side = max(2, size // 8)
    start, end = np.array(spec["distractor_start"]), np.array(spec["distractor_end"])
    for index in range(num_frames):
        y, x = (start + (end - start) * index / (num_frames - 1)) * (size - side)
        frames[index, round(y) : round(y) + side, round(x) : round(x) + side] = spec["distractor_rgb"]
    return frames


# --- generation ---------------------------------------------------------------------------------------------
@dataclass
class _Catalogue:
    items: pd.DataFrame
    truth: pd.DataFrame
    specs: list[dict[str, Any]]
    tree: ClusterTree


def _title(kind: str, words: list[str], rng: np.random.Generator) -> str:
    """A vague title, or an informative template filled with the four (possibly decoy) topic words."""
    if kind == "vague":
        return str(rng.choice(VAGUE_TITLES))
    template = str(rng.choice(INFORMATIVE_TITLE_TEMPLATES))
    return template.format(w1=words[0], w2=words[1], w3=words[2], w4=words[3])


def _tags(
    path_ids: list[str], words: dict[str, str], level3_nodes: list[str], config: WorldConfig, rng: np.random.Generator
) -> list[str]:
    """``tags_per_item`` distinct tags: topic words of the item's level-2..4 nodes, each replaced with
    probability ``tag_noise`` by the word of a random level-3 node."""
    own = [words[node_id] for node_id in path_ids[1:]]
    tags: list[str] = []
    for _ in range(config.tags_per_item):
        if rng.random() < config.tag_noise:
            tag = words[level3_nodes[int(rng.integers(len(level3_nodes)))]]
        else:
            tag = own[int(rng.integers(len(own)))]
        if tag not in tags:
            tags.append(tag)
    return tags


def _visual_spec(
    item_id: str,
    path: tuple[int, ...],
    targets: list[int],
    richness: float,
    config: WorldConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec for :func:`render_frames`, ground-truth visual columns) of an item at index ``path``."""
    i1, i2, i3, i4 = path
    top_name, top_rgb = TOP_COLOURS[i1]
    bottom_name, bottom_rgb = BOTTOM_COLOURS[i2]
    block_name, block_rgb = SIGNATURE_COLOURS[i3]
    top_rgb, bottom_rgb, block_rgb = (_jitter(colour, rng) for colour in (top_rgb, bottom_rgb, block_rgb))
    layout = LAYOUTS[i4]
    strength = 0.6 + 0.4 * richness
    window = max(2, round(config.num_frames * (0.2 + 0.4 * richness)))
    slots = rng.permutation(2)
    accents = []
    for slot, target in zip(slots, targets, strict=False):
        start = int(rng.integers(0, config.num_frames - window + 1))
        rgb = _blend(SIGNATURE_COLOURS[target][1], top_rgb, strength)
        accents.append({"slot": int(slot), "start": start, "end": start + window, "rgb": rgb})
    accent_names = [SIGNATURE_COLOURS[target][0] for target in targets]
    caption = f"{top_name} top, {bottom_name} bottom, {block_name} block {layout}, " + " and ".join(
        f"{name} accent" for name in accent_names
    )
    spec = {
        "item_id": item_id,
        "top_rgb": top_rgb,
        "bottom_rgb": bottom_rgb,
        "block_rgb": block_rgb,
        "layout": layout,
        "accents": accents,
        "distractor_rgb": [int(value) for value in rng.integers(0, 256, 3)],
        "distractor_start": rng.uniform(0, 1, 2).tolist(),
        "distractor_end": rng.uniform(0, 1, 2).tolist(),
    }
    truth = {
        "top_colour": top_name,
        "bottom_colour": bottom_name,
        "block_colour": block_name,
        "layout": layout,
        "accent_colours": accent_names,
        "accent_frames": [[accent["start"], accent["end"]] for accent in accents],
        "visual_caption": caption,
    }
    return spec, truth


def _make_catalogue(config: WorldConfig, rng: np.random.Generator) -> _Catalogue:
    _, _, b3, b4 = config.branching
    nodes, paths = build_taxonomy(config.branching, rng)
    words = {node.node_id: node.description for node in nodes}
    leaves = [node.node_id for node in nodes if node.level == WORLD_LEVELS]
    width = len(str(config.num_items - 1))
    item_ids = [f"v{index:0{width}d}" for index in range(config.num_items)]
    leaf_of_item = [leaves[index] for index in rng.permutation(np.arange(config.num_items) % len(leaves))]
    ranks = rng.permutation(config.num_items) + 1
    impressions = np.maximum(1, np.round(config.max_impressions / ranks**config.zipf_exponent)).astype(np.int64)
    created_at = [
        WORLD_EPOCH + dt.timedelta(seconds=float(offset))
        for offset in rng.uniform(0, config.days * 86400, config.num_items)
    ]
    kinds = rng.choice(
        ["informative", "vague", "misleading"],
        size=config.num_items,
        p=[
            1 - config.vague_title_fraction - config.misleading_title_fraction,
            config.vague_title_fraction,
            config.misleading_title_fraction,
        ],
    )
    richness = np.round(rng.uniform(0, 1, config.num_items), 3)
    noise_rng = np.random.default_rng([config.seed, 1])  # new draws leave the default world's draws unchanged
    level3_nodes = [node.node_id for node in nodes if node.level == AFFINITY_LEVEL]
    items, truth, specs = [], [], []
    for index, (item_id, leaf) in enumerate(zip(item_ids, leaf_of_item, strict=True)):
        path_ids = [path_node_id(paths[leaf][: depth + 1]) for depth in range(WORLD_LEVELS)]
        sibling_indices = [other for other in range(b3) if other != paths[leaf][2]]
        chosen = rng.choice(sibling_indices, size=min(2, len(sibling_indices)), replace=False)
        has_secondary = len(chosen) > 1 and rng.random() < config.secondary_affinity_fraction
        targets = [int(chosen[0])] + ([int(chosen[1])] if has_secondary else [])
        good_clusters = [f"{path_ids[1]}.{target:02d}" for target in targets]
        title_words = [words[node_id] for node_id in path_ids]
        if kinds[index] == "misleading":
            decoy = f"{path_ids[1]}.{int(rng.choice(sibling_indices)):02d}"
            title_words[2:] = [words[decoy], words[f"{decoy}.{int(rng.integers(b4)):02d}"]]
        title = _title(str(kinds[index]), title_words, rng)
        visual_path = paths[leaf]
        if config.visual_noise > 0 and noise_rng.random() < config.visual_noise:
            visual_path = paths[leaves[int(noise_rng.integers(len(leaves)))]]
        spec, truth_visual = _visual_spec(item_id, visual_path, targets, float(richness[index]), config, rng)
        specs.append(spec)
        extra = {}
        if config.tags_per_item:
            extra["tags"] = _tags(path_ids, words, level3_nodes, config, noise_rng)
        items.append(
            {
                "item_id": item_id,
                "title": title,
                "description": None,
                "video_path": f"videos/{item_id}.mp4" if config.with_video and not config.thumbnail_only else None,
                "thumbnail_path": f"thumbnails/{item_id}.jpg" if config.with_video else None,
                "impressions": int(impressions[index]),
                "created_at": created_at[index],
                "taxonomy": [words[node_id] for node_id in path_ids] if config.include_taxonomy else None,
                **extra,
            }
        )
        truth.append(
            {
                "item_id": item_id,
                **{level_column(level + 1): path_ids[level] for level in range(WORLD_LEVELS)},
                "title_kind": str(kinds[index]),
                "visual_richness": float(richness[index]),
                "affine_cluster": good_clusters[0],
                "secondary_cluster": good_clusters[1] if len(good_clusters) > 1 else None,
                "good_clusters": good_clusters,
                **truth_visual,
            }
        )
    tree = ClusterTree(nodes, dict(zip(item_ids, leaf_of_item, strict=True)), WORLD_LEVELS)
    return _Catalogue(pd.DataFrame(items), pd.DataFrame(truth), specs, tree)


def _index_path(node_id: str) -> tuple[int, ...]:
    """Child indices of a node id from ``path_node_id``: "c02.00.01" -> (2, 0, 1)."""
    return tuple(int(part) for part in node_id[1:].split("."))


def _make_fresh_uploads(config: WorldConfig, tree: ClusterTree, logs_end: dt.datetime) -> _Catalogue:
    """``config.fresh_uploads`` items created after ``logs_end``, drawn like the catalogue's items (leaf, title
    kind, richness, affine and secondary siblings, visual code, tags) from their own stream ``[seed, 2]``, so
    the catalogue, users and logs never depend on them. No impressions; ids ``f<index>``."""
    rng = np.random.default_rng([config.seed, 2])
    _, _, b3, b4 = config.branching
    words = {node_id: tree.node(node_id).description for level in range(1, WORLD_LEVELS + 1)
             for node_id in tree.nodes_at(level)}  # fmt: skip
    leaves = tree.nodes_at(WORLD_LEVELS)
    level3_nodes = tree.nodes_at(AFFINITY_LEVEL)
    title_p = [
        1 - config.vague_title_fraction - config.misleading_title_fraction,
        config.vague_title_fraction,
        config.misleading_title_fraction,
    ]
    width = len(str(max(config.fresh_uploads - 1, 0)))
    items, truth, specs = [], [], []
    for index in range(config.fresh_uploads):
        item_id = f"f{index:0{width}d}"
        leaf = leaves[int(rng.integers(len(leaves)))]
        path = _index_path(leaf)
        path_ids = [path_node_id(path[: depth + 1]) for depth in range(WORLD_LEVELS)]
        kind = str(rng.choice(["informative", "vague", "misleading"], p=title_p))
        richness = round(float(rng.uniform(0, 1)), 3)
        created_at = logs_end + dt.timedelta(seconds=float(rng.uniform(60, 86400)))
        sibling_indices = [other for other in range(b3) if other != path[2]]
        chosen = rng.choice(sibling_indices, size=min(2, len(sibling_indices)), replace=False)
        has_secondary = len(chosen) > 1 and rng.random() < config.secondary_affinity_fraction
        targets = [int(chosen[0])] + ([int(chosen[1])] if has_secondary else [])
        good_clusters = [f"{path_ids[1]}.{target:02d}" for target in targets]
        title_words = [words[node_id] for node_id in path_ids]
        if kind == "misleading":
            decoy = f"{path_ids[1]}.{int(rng.choice(sibling_indices)):02d}"
            title_words[2:] = [words[decoy], words[f"{decoy}.{int(rng.integers(b4)):02d}"]]
        title = _title(kind, title_words, rng)
        visual_path = path
        if config.visual_noise > 0 and rng.random() < config.visual_noise:
            visual_path = _index_path(leaves[int(rng.integers(len(leaves)))])
        spec, truth_visual = _visual_spec(item_id, visual_path, targets, richness, config, rng)
        specs.append(spec)
        extra = {"tags": _tags(path_ids, words, level3_nodes, config, rng)} if config.tags_per_item else {}
        items.append(
            {
                "item_id": item_id,
                "title": title,
                "description": None,
                "video_path": f"{FRESH_VIDEOS}/{item_id}.mp4"
                if config.with_video and not config.thumbnail_only
                else None,
                "thumbnail_path": f"{FRESH_THUMBNAILS}/{item_id}.jpg" if config.with_video else None,
                "impressions": 0,
                "created_at": created_at,
                "taxonomy": [words[node_id] for node_id in path_ids] if config.include_taxonomy else None,
                **extra,
            }
        )
        truth.append(
            {
                "item_id": item_id,
                **{level_column(level + 1): path_ids[level] for level in range(WORLD_LEVELS)},
                "title_kind": kind,
                "visual_richness": richness,
                "affine_cluster": good_clusters[0],
                "secondary_cluster": good_clusters[1] if len(good_clusters) > 1 else None,
                "good_clusters": good_clusters,
                **truth_visual,
            }
        )
    return _Catalogue(pd.DataFrame(items), pd.DataFrame(truth), specs, tree)


def _make_users(config: WorldConfig, tree: ClusterTree, rng: np.random.Generator) -> pd.DataFrame:
    level2_nodes = tree.nodes_at(2)
    width = len(str(config.num_users - 1))
    rows = []
    for index in range(config.num_users):
        count = int(rng.integers(1, min(3, len(level2_nodes)) + 1))
        interests = sorted(rng.choice(level2_nodes, size=count, replace=False).tolist())
        rows.append(
            {
                "user_id": f"u{index:0{width}d}",
                "interests": interests,
                "interest_weights": np.round(rng.dirichlet(np.ones(count)), 4).tolist(),
            }
        )
    return pd.DataFrame(rows)


class _ClusterSampler:
    """Popularity-weighted item draws within a level-3 cluster, or over the whole catalogue."""

    def __init__(self, items: pd.DataFrame, tree: ClusterTree) -> None:
        self.item_ids = items["item_id"].to_numpy()
        weights = items.set_index("item_id")["impressions"].astype(float)
        self.members: dict[str, np.ndarray] = {}
        self.cumulative: dict[str, np.ndarray] = {}
        for node_id in tree.nodes_at(AFFINITY_LEVEL):
            members = np.array(tree.items_in(node_id))
            self.members[node_id] = members
            self.cumulative[node_id] = np.cumsum(weights.loc[members].to_numpy())
        self.all_cumulative = np.cumsum(weights.loc[self.item_ids].to_numpy())

    def draw(self, node_id: str | None, uniform: float, avoid: str | None = None) -> str:
        """An item of ``node_id`` (None: any item) chosen with probability proportional to impressions.

        ``avoid`` (the current item) is replaced by its next neighbour in the cluster, so a session never
        repeats an item back to back unless the cluster has a single item.
        """
        cumulative = self.all_cumulative if node_id is None else self.cumulative[node_id]
        members = self.item_ids if node_id is None else self.members[node_id]
        position = min(int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right")), len(members) - 1)
        if members[position] == avoid:
            position = (position + 1) % len(members)
        return str(members[position])


def _make_interactions(
    config: WorldConfig, catalogue: _Catalogue, users: pd.DataFrame, rng: np.random.Generator, progress: bool
) -> pd.DataFrame:
    tree = catalogue.tree
    oracle = WorldOracle(catalogue.truth, config.satisfaction)
    sampler = _ClusterSampler(catalogue.items, tree)
    siblings = {node_id: tree.siblings(node_id) for node_id in tree.nodes_at(AFFINITY_LEVEL)}
    level2_of = {node_id: tree.ancestor(node_id, 2) for node_id in tree.nodes_at(AFFINITY_LEVEL)}
    children = {node_id: tree.children(node_id) for node_id in tree.nodes_at(2)}
    same_p, serendipitous_p, _ = config.transition_probs
    names = ("user_id", "item_id", "ts", "satisfaction", "context_item_id", "session_id")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    session_count = 0
    for user in tqdm(
        users.itertuples(index=False), total=len(users), desc="sessions", unit="user", disable=not progress
    ):
        interests = set(user.interests)
        for _ in range(1 + int(rng.poisson(config.sessions_per_user - 1))):
            session_id = f"s{session_count:07d}"
            session_count += 1
            start = WORLD_EPOCH + dt.timedelta(seconds=float(rng.uniform(0, config.days * 86400)))
            length = 2 + int(rng.poisson(config.session_length - 2))
            gaps = np.cumsum(rng.uniform(5, 60, length))
            interest = str(rng.choice(user.interests, p=np.array(user.interest_weights) / sum(user.interest_weights)))
            cluster = str(rng.choice(children[interest]))
            current = sampler.draw(cluster, rng.random())
            previous: str | None = None
            for step in range(length):
                if step > 0:
                    move = rng.random()
                    if move < same_p:
                        target: str | None = cluster
                    elif move < same_p + serendipitous_p:
                        target = str(rng.choice(siblings[cluster]))
                    else:
                        target = None
                    previous, current = current, sampler.draw(target, rng.random(), avoid=current)
                    cluster = str(tree.node_of(current, AFFINITY_LEVEL))
                interested = level2_of[cluster] in interests
                if previous is None:
                    mean = config.satisfaction.same_cluster + (config.satisfaction.interest_bonus if interested else 0)
                else:
                    mean = oracle.expected_satisfaction(previous, current, interested)
                satisfaction = float(np.clip(mean + rng.normal(0, config.satisfaction.noise_sd), 0, 1))
                columns["user_id"].append(user.user_id)
                columns["item_id"].append(current)
                columns["ts"].append(start + dt.timedelta(seconds=float(gaps[step])))
                columns["satisfaction"].append(round(satisfaction, 4))
                columns["context_item_id"].append(previous)
                columns["session_id"].append(session_id)
    frame = pd.DataFrame(columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values(["user_id", "ts"], kind="stable", ignore_index=True)


def _write_item_media(task: tuple[dict[str, Any], str, int, int, int, str, str, bool]) -> dict[str, Any]:
    spec, directory, size, num_frames, fps, videos, thumbnails, thumbnail_only = task
    item_id = spec["item_id"]
    video_path = os.path.join(directory, videos, f"{item_id}.mp4")
    thumbnail_path = os.path.join(directory, thumbnails, f"{item_id}.jpg")
    frames = render_frames(spec, size, num_frames)
    if not thumbnail_only:
        encode_video(frames, video_path, fps)
    thumbnail_frame = select_thumbnail_index(frames)
    save_jpeg(frames[thumbnail_frame], thumbnail_path)
    return {
        "item_id": item_id,
        "video_sha256": None if thumbnail_only else file_sha256(video_path),
        "video_bytes": 0 if thumbnail_only else os.path.getsize(video_path),
        "frame_count": num_frames,
        "fps": fps,
        "width": size,
        "height": size,
        "thumbnail_frame": thumbnail_frame,
        "thumbnail_sha256": file_sha256(thumbnail_path),
    }


def _write_media(
    config: WorldConfig,
    specs: list[dict[str, Any]],
    directory: Path,
    progress: bool,
    subdirectories: tuple[str, str] = ("videos", "thumbnails"),
) -> pd.DataFrame:
    videos, thumbnails = subdirectories
    if not config.thumbnail_only:
        (directory / videos).mkdir()
    (directory / thumbnails).mkdir()
    tasks = [
        (
            spec,
            str(directory),
            config.frame_size,
            config.num_frames,
            config.fps,
            videos,
            thumbnails,
            config.thumbnail_only,
        )
        for spec in specs
    ]
    label = f"rendering {thumbnails}" if config.thumbnail_only else f"encoding {videos}"
    return pd.DataFrame(map_tasks(_write_item_media, tasks, config.workers, label, progress))


def _write_fresh_uploads(config: WorldConfig, fresh: _Catalogue, directory: Path, progress: bool) -> None:
    """fresh_items.parquet (the items schema, media under fresh_videos/ and fresh_thumbnails/),
    fresh_ground_truth.parquet and, with videos, fresh_media.parquet."""
    truth = fresh.truth
    if config.with_video and fresh.specs:
        media = _write_media(config, fresh.specs, directory, progress, (FRESH_VIDEOS, FRESH_THUMBNAILS))
        media.to_parquet(directory / FRESH_MEDIA_FILE, index=False)
        truth = truth.merge(media[["item_id", "thumbnail_frame"]], on="item_id")
    else:
        truth = truth.assign(thumbnail_frame=None)
    fresh.items.to_parquet(directory / FRESH_ITEMS_FILE, index=False)
    truth.to_parquet(directory / FRESH_GROUND_TRUTH_FILE, index=False)


def generate_world(
    config: WorldConfig,
    artifacts_root: str | os.PathLike[str],
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Generate a world and publish it as ``<artifacts_root>/world/<version>``; returns that directory."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    catalogue = _make_catalogue(config, rng)
    users = _make_users(config, catalogue.tree, rng)
    interactions = _make_interactions(config, catalogue, users, rng, progress)
    fresh = _make_fresh_uploads(config, catalogue.tree, interactions["ts"].max().to_pydatetime())
    bulk = ("videos", "thumbnails", FRESH_VIDEOS, FRESH_THUMBNAILS)
    with ArtifactWriter(Path(artifacts_root), WORLD_KIND, config.to_dict(), bulk_dirs=bulk) as writer:
        directory = writer.dir
        if config.with_video:
            media = _write_media(config, catalogue.specs, directory, progress)
            media.to_parquet(directory / "media.parquet", index=False)
            truth = catalogue.truth.merge(media[["item_id", "thumbnail_frame"]], on="item_id")
        else:
            truth = catalogue.truth.assign(thumbnail_frame=None)
        catalogue.items.to_parquet(directory / "items.parquet", index=False)
        interactions.to_parquet(directory / "interactions.parquet", index=False)
        users.to_parquet(directory / "users.parquet", index=False)
        truth.to_parquet(directory / "ground_truth.parquet", index=False)
        catalogue.tree.save(directory / "true_tree")
        if config.fresh_uploads:
            _write_fresh_uploads(config, fresh, directory, progress)
        relation_counts = _relation_counts(interactions, WorldOracle(catalogue.truth, config.satisfaction))
        writer.counts.update(
            {
                "items": len(catalogue.items),
                "users": len(users),
                "interactions": len(interactions),
                "sessions": int(interactions["session_id"].nunique()),
                "nodes_per_level": {level: len(catalogue.tree.nodes_at(level)) for level in range(1, WORLD_LEVELS + 1)},
                "title_kinds": catalogue.truth["title_kind"].value_counts().to_dict(),
                "transitions": relation_counts,
                "videos": len(catalogue.items) if config.with_video and not config.thumbnail_only else 0,
                **({"thumbnails": len(catalogue.items)} if config.thumbnail_only else {}),
                "fresh_uploads": config.fresh_uploads,
            }
        )
    log(f"world written to {writer.final_dir}")
    return writer.final_dir


def _relation_counts(interactions: pd.DataFrame, oracle: WorldOracle) -> dict[str, dict[str, float]]:
    pairs = interactions.dropna(subset=["context_item_id"])
    relations = [
        oracle.relation(context, item) for context, item in zip(pairs["context_item_id"], pairs["item_id"], strict=True)
    ]
    grouped = pairs.assign(relation=relations).groupby("relation")["satisfaction"]
    return {
        relation: {"count": int(count), "mean_satisfaction": round(float(mean), 4)}
        for relation, count, mean in zip(grouped.size().index, grouped.size(), grouped.mean(), strict=True)
    }
