"""What the explorer reads from the artifact root: the served catalogue and tree, thumbnails, the MLLM's frames.

The catalogue and the tree are the ones the running stack serves: :func:`resolve_bundle` follows the newest
model repository's lineage (the tree the MLLM was trained on, the catalogue its curation read). When that
lineage does not resolve (stale artifacts), the newest tree and world are shown and a note says so. The frames
of an item are the ones in the newest frame store (what batch planning fed the MLLM); an item outside the store
gets the frames the Planner would sample from its video for a LIVE plan, with the same sampler.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from serendip.artifacts.frames import (
    DEFAULT_NUM_FRAMES,
    FRAMES_KIND,
    ITEM_ERRORS,
    read_rows,
    read_store_index,
    row_pixels,
)
from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.artifacts.tree import load_tree
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cluster_tree import ClusterNode, ClusterTree, level_column
from serendip.core.errors import ArtifactError, DataError
from serendip.core.frames import sample_frames
from serendip.core.schema import load_items
from serendip.explorer.files import relative_url_path

logger = logging.getLogger(__name__)

FRAME_CACHE_SIZE = 1024
"""Frame strips kept in memory (a strip of four 32-pixel frames is a few KiB)."""


@dataclass(frozen=True)
class ItemCard:
    """One catalogue item as a page shows it."""

    item_id: str
    title: str
    impressions: int
    thumbnail_url: str
    frames_url: str
    known: bool
    """False for an id the catalogue does not hold (an upload, or a stale id)."""


@dataclass(frozen=True)
class NodeStats:
    """Size and traffic of a tree node."""

    items: int
    impressions: int


class Catalogue:
    """The served catalogue and cluster tree of one artifact root, and the images of its items."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.notes: list[str] = []
        """Anything a person should know about what is shown (e.g. lineage that did not resolve)."""
        tree_dir, items_path = self._served_inputs()
        self.tree: ClusterTree = load_tree(tree_dir)
        self.tree_dir = tree_dir
        items, _report = load_items(items_path)
        items = items.assign(
            title=items["title"].fillna(""),
            impressions=pd.to_numeric(items["impressions"], errors="coerce").fillna(0).astype(np.int64),
        )
        self.items = items.set_index("item_id", drop=False).rename_axis(index=None)
        self.items_path = items_path
        self._title_lower = self.items["title"].str.lower()
        self._item_nodes = self.tree.item_nodes_frame().set_index("item_id")
        self._stats = self._node_stats()
        self.frame_store, self._frame_shards, self.num_frames = self._frame_store()
        self._strips: OrderedDict[str, bytes | None] = OrderedDict()
        self._strips_lock = threading.Lock()

    # --- loading -------------------------------------------------------------------------------------------
    def _served_inputs(self) -> tuple[Path, Path]:
        try:
            bundle = resolve_bundle(self.root, with_plans=False)
        except ArtifactError as error:
            self.notes.append(f"the served lineage does not resolve ({error}); showing the newest tree and world")
            world = resolve_artifact(self.root, WORLD_KIND)
            return resolve_artifact(self.root, "tree"), world / "items.parquet"
        catalogue = bundle.catalogue
        if catalogue is None:
            raise ArtifactError(f"the curation {bundle.curation} records no catalogue the explorer can read")
        items_path = catalogue if catalogue.suffix == ".parquet" else catalogue / "items.parquet"
        return bundle.tree, items_path

    def _node_stats(self) -> dict[str, NodeStats]:
        frame = self._item_nodes.join(self.items["impressions"], how="left").fillna({"impressions": 0})
        stats: dict[str, NodeStats] = {}
        for level in range(1, self.tree.num_levels + 1):
            grouped = frame.groupby(level_column(level))["impressions"].agg(["size", "sum"])
            for node_id, row in grouped.iterrows():
                stats[str(node_id)] = NodeStats(int(row["size"]), int(row["sum"]))
        return stats

    def _frame_store(self) -> tuple[Path | None, dict[str, str], int]:
        try:
            store = resolve_artifact(self.root, FRAMES_KIND)
        except ArtifactError:
            return None, {}, DEFAULT_NUM_FRAMES
        settings = read_manifest(store).get("parameters", {}).get("settings", {})
        index = read_store_index(store)
        shards = dict(zip(index["item_id"], index["shard_file"], strict=True))
        return store, shards, int(settings.get("num_frames", DEFAULT_NUM_FRAMES))

    # --- items -----------------------------------------------------------------------------------------------
    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items.index

    def card(self, item_id: str) -> ItemCard:
        """The item as a page shows it (a placeholder card for an unknown id)."""
        if item_id not in self.items.index:
            return ItemCard(item_id, "", 0, "", "", known=False)
        row = self.items.loc[item_id]
        return ItemCard(
            item_id=item_id,
            title=str(row["title"]),
            impressions=int(row["impressions"]),
            thumbnail_url=self._thumbnail_url(item_id, row["thumbnail_path"]),
            frames_url=f"/frames/{item_id}.png",
            known=True,
        )

    def _thumbnail_url(self, item_id: str, thumbnail_path: object) -> str:
        if isinstance(thumbnail_path, str) and thumbnail_path:
            relative = relative_url_path(self.root, Path(thumbnail_path))
            if relative is not None:
                return f"/media/{relative}"
        return f"/thumb/{item_id}.png"

    def search(self, query: str = "", cluster_id: str = "", offset: int = 0, limit: int = 48) -> tuple[list[str], int]:
        """Item ids whose id or title contains ``query`` (case-insensitive), inside ``cluster_id`` when given;
        most-watched first. Returns one page and the number of matches."""
        mask = pd.Series(True, index=self.items.index)
        query = query.strip().lower()
        if query:
            mask &= self.items["item_id"].str.lower().str.contains(query, regex=False) | self._title_lower.str.contains(
                query, regex=False
            )
        if cluster_id:
            try:
                members = set(self.tree.items_in(cluster_id))
            except DataError:
                members = set()
            mask &= self.items["item_id"].isin(members)
        matches = self.items[mask].sort_values(["impressions", "item_id"], ascending=[False, True])
        return list(matches["item_id"][offset : offset + limit]), len(matches)

    def most_watched(self, cluster_id: str, count: int) -> list[str]:
        """The ``count`` items of a cluster with the most impressions."""
        try:
            members = self.tree.items_in(cluster_id)
        except DataError:
            return []
        known = self.items.loc[self.items.index.intersection(members)]
        return list(known.sort_values(["impressions", "item_id"], ascending=[False, True])["item_id"][:count])

    # --- tree ----------------------------------------------------------------------------------------------
    def path(self, node_id: str) -> list[ClusterNode]:
        """The node and its ancestors, level 1 first (empty for an unknown id)."""
        nodes: list[ClusterNode] = []
        current: str | None = node_id
        while current is not None:
            try:
                node = self.tree.node(current)
            except DataError:
                return []
            nodes.append(node)
            current = node.parent_id
        return nodes[::-1]

    def item_path(self, item_id: str) -> list[ClusterNode]:
        """The item's nodes from level 1 to the leaf (empty when the tree does not hold it)."""
        if item_id not in self._item_nodes.index:
            return []
        return [self.tree.node(node_id) for node_id in self._item_nodes.loc[item_id]]

    def stats(self, node_id: str) -> NodeStats:
        """Items and impressions under a node."""
        return self._stats.get(node_id, NodeStats(0, 0))

    # --- images ----------------------------------------------------------------------------------------------
    def thumbnail_png(self, item_id: str) -> bytes | None:
        """The item's thumbnail when it lies outside the artifact root, else its stored or middle frame, as PNG."""
        if item_id not in self.items.index:
            return None
        path = self.items.loc[item_id]["thumbnail_path"]
        try:
            if isinstance(path, str) and path and Path(path).is_file():
                with Image.open(path) as image:
                    return _png(np.asarray(image.convert("RGB")))
            frames = self._frames(item_id)
        except ITEM_ERRORS as error:
            logger.warning("thumbnail of %s: %s", item_id, error)
            return None
        return _png(frames[len(frames) // 2]) if frames is not None else None

    def frames_png(self, item_id: str) -> bytes | None:
        """The frames the MLLM sees for this item, side by side, as one PNG (None without a video)."""
        with self._strips_lock:
            if item_id in self._strips:
                self._strips.move_to_end(item_id)
                return self._strips[item_id]
        try:
            frames = self._frames(item_id)
        except ITEM_ERRORS as error:
            logger.warning("frames of %s: %s", item_id, error)
            frames = None
        strip = _png(np.concatenate(list(frames), axis=1)) if frames is not None else None
        with self._strips_lock:
            self._strips[item_id] = strip
            while len(self._strips) > FRAME_CACHE_SIZE:
                self._strips.popitem(last=False)
        return strip

    def frames_source(self, item_id: str) -> str:
        """Where :meth:`frames_png` takes the item's frames from, in words."""
        if item_id in self._frame_shards:
            return f"frame store {self.frame_store.name if self.frame_store else ''}: what batch planning fed the MLLM"
        return f"{self.num_frames} frames sampled from the video, as the Planner samples them for a LIVE plan"

    def _frames(self, item_id: str) -> np.ndarray | None:
        shard = self._frame_shards.get(item_id)
        if shard is not None and self.frame_store is not None:
            row = read_rows(self.frame_store, [shard], [item_id]).get(item_id)
            if row is not None:
                return row_pixels(row)[0]
        if item_id not in self.items.index:
            return None
        video = self.items.loc[item_id]["video_path"]
        if not isinstance(video, str) or not video or not Path(video).is_file():
            return None
        return sample_frames(video, self.num_frames).frames


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()
