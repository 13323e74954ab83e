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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from ray_jobs.ray_runtime import StageStats, run_shards, shard_size_for, spec_of, summary_batch
from ray_jobs.staging import (
    ShardStaging,
    exclusive_run,
    remove_stale_staging,
    run_key,
    write_parquet_atomically,
)
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
        """JSON-ready summary: counts and per-stage items/s."""
        return {
            "frame_store": str(self.store_dir),
            "published": self.published,
            "counts": self.counts,
            "stages": {stats.stage: stats.to_dict() for stats in self.stages},
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


class DecodeShardWorker:
    """Ray actor: decodes the items of one shard and commits its rows (and error rows) to the staging dir."""

    def __init__(self, staging_dir: str, staging_key: str, settings: dict[str, int]) -> None:
        self.staging = ShardStaging(Path(staging_dir), staging_key)
        self.settings = DecodeSettings(**settings)
        self.ready_at = time.time()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        summaries = []
        for spec in spec_of(batch):
            started = time.perf_counter()
            shard_id, media = spec["shard_id"], [ItemMedia(**item) for item in spec["items"]]
            errors: list[dict[str, str]] = []
            if not self.staging.shard_path(shard_id).exists():  # a retried task must not redo a committed shard
                rows, errors = decode_items(media, self.settings)
                write_parquet_atomically(errors_table(errors), self.staging.sidecar_path(shard_id, "errors"))
                self.staging.commit(shard_id, frames_table(rows))
            summaries.append(
                {
                    "shard_id": shard_id,
                    "items": len(media),
                    "errors": len(errors),
                    "seconds": time.perf_counter() - started,
                    "ready_at": self.ready_at,
                }
            )
        return summary_batch(summaries)


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
    kind_dir = Path(root) / FRAMES_KIND
    with exclusive_run(kind_dir):
        started = time.perf_counter()
        media, hash_errors = fingerprint_items(items, settings)
        hashing = StageStats("hash", len(items), time.perf_counter() - started)
        LOGGER.info(hashing.line())

        previous_index = pd.DataFrame(columns=["item_id", "content_sha256", "shard_file"])
        if previous_dir is not None:
            if read_manifest(previous_dir)["parameters"].get("settings") == settings.to_dict():
                previous_index = read_store_index(previous_dir)
            else:
                LOGGER.info("previous frame store %s used other decode settings: decoding everything", previous_dir)
        previous_content = dict(zip(previous_index["item_id"], previous_index["content_sha256"], strict=True))
        to_decode = [item for item in media if previous_content.get(item.item_id) != item.content_sha256]
        keep_ids = {item.item_id for item in media} - {item.item_id for item in to_decode}
        if previous_dir is not None and not to_decode and hash_errors.empty and keep_ids == set(previous_content):
            LOGGER.info("frame store %s is up to date", previous_dir)
            return DecodeResult(previous_dir, False, {"items": len(keep_ids), "decoded": 0}, [hashing])

        shard_items = shard_size_for(len(to_decode), shard_size, workers)
        key = run_key(
            {
                "job": "decode_frames",
                "settings": settings.to_dict(),
                "shard_items": shard_items,
                "items": [(item.item_id, item.content_sha256) for item in to_decode],
            }
        )
        staging = ShardStaging.for_run(kind_dir, key)
        specs = [
            {"shard_id": shard_id, "items": [asdict(item) for item in to_decode[start : start + shard_items]]}
            for shard_id, start in enumerate(range(0, len(to_decode), shard_items))
        ]
        committed = staging.committed()
        pending = [spec for spec in specs if spec["shard_id"] not in committed]
        if committed:
            LOGGER.info("resuming: %d of %d shards were committed by an earlier attempt", len(committed), len(specs))
        decoding, summaries = run_shards(
            "decode",
            pending,
            DecodeShardWorker,
            {"staging_dir": str(staging.directory), "staging_key": key, "settings": settings.to_dict()},
            workers,
            cpus_per_worker,
            progress=progress,
        )

        started = time.perf_counter()
        parameters = {"settings": settings.to_dict(), "shard_size": shard_size}
        if previous_dir is not None:
            inputs = inputs | {"previous": input_record(previous_dir)}
        with ArtifactWriter(Path(root), FRAMES_KIND, parameters, inputs=inputs, bulk_dirs=(SHARDS_DIR,)) as writer:
            shards_dir = writer.dir / SHARDS_DIR
            shards_dir.mkdir()
            decoded = 0
            error_parts = [hash_errors]
            for spec in specs:
                shard_path = staging.shard_path(spec["shard_id"])
                rows = pq.read_metadata(shard_path).num_rows
                if rows:
                    _link_or_copy(shard_path, shards_dir / shard_path.name)
                decoded += rows
                error_parts.append(pd.read_parquet(staging.sidecar_path(spec["shard_id"], "errors")))
            carried = _carry_previous(previous_dir, previous_index, keep_ids, shards_dir) if keep_ids else 0
            errors = pd.concat([part for part in error_parts if not part.empty] or [hash_errors], ignore_index=True)
            pq.write_table(errors_table(errors.sort_values("item_id")), writer.dir / ERRORS_FILE)
            counts = {
                "items": decoded + carried,
                "decoded": decoded,
                "carried": carried,
                "errors": len(errors),
                "shards_run": len(pending),
                "shards_resumed": len(committed & {spec["shard_id"] for spec in specs}),
            }
            writer.counts.update(counts)
        staging.remove()
        remove_stale_staging(kind_dir)
        publishing = StageStats("publish", decoded + carried, time.perf_counter() - started)
        LOGGER.info(publishing.line())
        return DecodeResult(writer.final_dir, True, counts, [hashing, decoding, publishing])
