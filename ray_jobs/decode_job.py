"""Frame decoding job: shards of videos -> sampled, resized frames and thumbnails in a new frame store version.

1. hash (driver): every item's video and thumbnail file is hashed; unreadable ones go to the error table.
2. decode (Ray Data actor pool on CPU workers): items whose content hash is not already in the previous frame
   store version are decoded in shards; each shard is committed to the run's staging dir (see
   :mod:`ray_jobs.staging`), so a killed run resumes where it stopped. A corrupt or truncated video is an
   error row, never a failed job.
3. publish: new shards and the still-valid shards of the previous version (hard-linked when unchanged,
   filtered when some of their items left the corpus or changed) become the new version, atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from ray_jobs.ray_runtime import StageStats, shard_report
from ray_jobs.sharded_run import CommittedShards, ShardedJob, ShardPool, ShardWorker
from ray_jobs.staging import write_parquet_atomically
from serendip.artifacts.frames import (
    ERRORS_FILE,
    FRAMES_KIND,
    SHARDS_DIR,
    DecodeSettings,
    ItemMedia,
    decode_items,
    errors_table,
    fingerprint_items,
    frames_table,
    read_store_index,
)
from serendip.artifacts.mllm import VISION_FILE
from serendip.artifacts.store import ArtifactWriter, input_record, read_manifest

LOGGER = logging.getLogger(__name__)
DEFAULT_SHARD_SIZE = 64


@dataclass(frozen=True)
class DecodeResult:
    """The frame store version a run published (or found up to date) and what the run did."""

    store_dir: Path
    published: bool
    counts: dict[str, int]
    stages: list[StageStats]

    def report(self) -> dict[str, Any]:
        """JSON-ready summary: counts, per-stage items/s and shards per node, and the node that ran each shard."""
        return {
            "frame_store": str(self.store_dir),
            "published": self.published,
            "counts": self.counts,
            "stages": {stats.stage: stats.to_dict() for stats in self.stages},
            "shards": shard_report(self.stages),
        }


def settings_for_model(mllm_dir: str | os.PathLike[str]) -> DecodeSettings:
    """Decode settings matching an MLLM artifact: its frame count and its vision input side and patch block."""
    from serendip.models.mllm.planner_spec import PlannerSpec

    spec = PlannerSpec.load(mllm_dir)
    geometry = json.loads((Path(mllm_dir) / spec.model_dir / VISION_FILE).read_text())
    uses_frames = spec.visual is not None and not spec.visual.thumbnail
    return DecodeSettings(
        num_frames=spec.visual.frames if uses_frames else DecodeSettings.num_frames,
        image_size=int(geometry["image_size"]),
        size_multiple=int(geometry["patch_size"]) * int(geometry["spatial_merge_size"]),
    )


class DecodeShardWorker(ShardWorker):
    """Ray actor: decodes the items of one shard and commits its rows (and error rows) to the staging dir."""

    def __init__(self, staging_dir: str, staging_key: str, settings: dict[str, int]) -> None:
        self.settings = DecodeSettings(**settings)
        super().__init__(staging_dir, staging_key)

    def process(self, spec: dict[str, Any]) -> int:
        rows, errors = decode_items([ItemMedia(**item) for item in spec["items"]], self.settings)
        write_parquet_atomically(errors_table(errors), self.staging.sidecar_path(spec["shard_id"], "errors"))
        self.staging.commit(spec["shard_id"], frames_table(rows))
        return len(errors)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(source, target)


def _carry_previous(previous_dir: Path, index: pd.DataFrame, keep_ids: set[str], shards_dir: Path) -> int:
    """Put the previous version's rows of ``keep_ids`` into ``shards_dir``; returns how many rows."""
    carried = 0
    for shard_file, rows in index.groupby("shard_file"):
        keep = rows["item_id"].isin(keep_ids)
        source = previous_dir / SHARDS_DIR / shard_file
        if keep.all():
            _link_or_copy(source, shards_dir / shard_file)
        elif keep.any():
            table = pq.read_table(source, filters=[("item_id", "in", sorted(rows.loc[keep, "item_id"]))])
            pq.write_table(table, shards_dir / shard_file)
        carried += int(keep.sum())
    return carried


class DecodeJob(ShardedJob[ItemMedia, DecodeResult]):
    """One frame decoding run: the items whose content hash is new, decoded into a new frame store version."""

    job = "decode_frames"
    stage = "decode"
    worker_class = DecodeShardWorker

    def __init__(
        self,
        root: Path,
        items: pd.DataFrame,
        settings: DecodeSettings,
        inputs: dict[str, Any],
        previous_dir: Path | None,
        shard_size: int,
        pool: ShardPool,
        progress: bool,
    ) -> None:
        super().__init__(root / FRAMES_KIND, shard_size, pool, progress)
        self.root, self.items, self.settings = root, items, settings
        self.inputs, self.previous_dir = inputs, previous_dir
        # Set by select: what hashing found and what the previous version contributes.
        self.hashing = StageStats("hash", 0, 0.0)
        self.hash_errors = pd.DataFrame()
        self.previous_index = pd.DataFrame(columns=["item_id", "content_sha256", "shard_file"])
        self.keep_ids: set[str] = set()

    def select(self) -> list[ItemMedia] | None:
        """Hash every item; those whose content hash is not in the previous version (same settings) are decoded."""
        started = time.perf_counter()
        media, self.hash_errors = fingerprint_items(self.items, self.settings)
        self.hashing = StageStats("hash", len(self.items), time.perf_counter() - started)
        LOGGER.info(self.hashing.line())

        previous = self.previous_dir
        if previous is not None:
            if read_manifest(previous)["parameters"].get("settings") == self.settings.to_dict():
                self.previous_index = read_store_index(previous)
            else:
                LOGGER.info("previous frame store %s used other decode settings: decoding everything", previous)
        index = self.previous_index
        previous_content = dict(zip(index["item_id"], index["content_sha256"], strict=True))
        to_decode = [item for item in media if previous_content.get(item.item_id) != item.content_sha256]
        self.keep_ids = {item.item_id for item in media} - {item.item_id for item in to_decode}
        if previous is not None and not to_decode and self.hash_errors.empty and self.keep_ids == set(previous_content):
            return None
        return to_decode

    def unchanged(self) -> DecodeResult:
        LOGGER.info("frame store %s is up to date", self.previous_dir)
        counts = {"items": len(self.keep_ids), "decoded": 0}
        return DecodeResult(self.previous_dir, False, counts, [self.hashing])  # type: ignore[arg-type]

    def run_inputs(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict()}

    def item_key(self, item: ItemMedia) -> tuple[str, str]:
        return item.item_id, item.content_sha256

    def shard_spec(self, items: Sequence[ItemMedia]) -> dict[str, Any]:
        return {"items": [asdict(item) for item in items]}

    def worker_kwargs(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict()}

    def publish(self, shards: CommittedShards) -> DecodeResult:
        """New shards and the still-valid rows of the previous version, with every error row, as a new version."""
        started = time.perf_counter()
        parameters = {"settings": self.settings.to_dict(), "shard_size": self.shard_size}
        inputs = self.inputs
        if self.previous_dir is not None:
            inputs = inputs | {"previous": input_record(self.previous_dir)}
        with ArtifactWriter(self.root, FRAMES_KIND, parameters, inputs=inputs, bulk_dirs=(SHARDS_DIR,)) as writer:
            shards_dir = writer.dir / SHARDS_DIR
            shards_dir.mkdir()
            decoded = 0
            error_parts = [self.hash_errors]
            for spec in shards.specs:
                shard_path = shards.staging.shard_path(spec["shard_id"])
                rows = pq.read_metadata(shard_path).num_rows
                if rows:
                    _link_or_copy(shard_path, shards_dir / shard_path.name)
                decoded += rows
                error_parts.append(pd.read_parquet(shards.staging.sidecar_path(spec["shard_id"], "errors")))
            carried = 0
            if self.previous_dir is not None and self.keep_ids:
                carried = _carry_previous(self.previous_dir, self.previous_index, self.keep_ids, shards_dir)
            errors = pd.concat([part for part in error_parts if not part.empty] or error_parts[:1], ignore_index=True)
            pq.write_table(errors_table(errors.sort_values("item_id")), writer.dir / ERRORS_FILE)
            counts = {"items": decoded + carried, "decoded": decoded, "carried": carried, "errors": len(errors)}
            counts |= shards.counts()
            writer.counts.update(counts)
        publishing = StageStats("publish", decoded + carried, time.perf_counter() - started)
        LOGGER.info(publishing.line())
        return DecodeResult(writer.final_dir, True, counts, [self.hashing, shards.stats, publishing])


def run_decode(
    root: str | os.PathLike[str],
    items: pd.DataFrame,
    settings: DecodeSettings,
    inputs: dict[str, Any],
    previous_dir: Path | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    workers: int = 1,
    cpus_per_worker: float = 1,
    progress: bool = True,
) -> DecodeResult:
    """Decode ``items`` (validated item rows) into a new frame store version under ``root``.

    With ``previous_dir`` (a frame store version decoded with the same settings), only items whose content hash
    is new are decoded; when nothing changed at all, nothing is published and the previous version is returned.
    Ray must be initialised (``ray_runtime.init_ray``).
    """
    pool = ShardPool(workers, cpus_per_worker)
    return DecodeJob(Path(root), items, settings, inputs, previous_dir, shard_size, pool, progress).run()
