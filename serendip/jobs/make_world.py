"""``python -m serendip.jobs.make_world``: generate the synthetic micro-video world (deterministic by seed).

Writes ``<artifacts>/world/<version>/``: items.parquet and interactions.parquet (the bring-your-own schema),
videos/*.mp4 (H.264) and thumbnails/*.jpg, media.parquet (per-video hash, frame count, thumbnail frame),
users.parquet, ground_truth.parquet (true taxonomy path, visual attributes, truly good serendipitous clusters,
visual richness, video caption), true_tree/ (the true taxonomy as a ClusterTree), fresh_items.parquet,
fresh_ground_truth.parquet and fresh_videos/ (uploads after the logs end, held out of everything else), and
manifest.json.
See docs/data.md for the design.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, read_manifest
from serendip.core.cli import CommaInts, run_job
from serendip.offline.world import WORLD_PRESETS, WorldConfig, generate_world

_WORLD = WorldConfig()
WorldPreset = Literal["default", "hard", "thumbnail"]


@dataclass(frozen=True)
class MakeWorldJob:
    """Options of one world (defaults: the demo world, ~10-20 s on 2 cores)."""

    preset: WorldPreset = "default"
    """default: the demo world; hard: weak/misleading titles and videos, clusters only in co-engagement and tags;
    thumbnail: the default world with a JPEG poster per item and no videos"""
    items: int = _WORLD.num_items
    """number of videos"""
    users: int = _WORLD.num_users
    """number of users"""
    branching: CommaInts = _WORLD.branching
    """children per node at levels 1..4, at most 7,7,8,4 (3,3,4,2 = 36 level-3 clusters)"""
    sessions_per_user: float = _WORLD.sessions_per_user
    """mean sessions per user"""
    session_length: float = _WORLD.session_length
    """mean session length"""
    frame_size: int = _WORLD.frame_size
    """pixels, square"""
    fps: int = _WORLD.fps
    """video frame rate"""
    num_frames: int = _WORLD.num_frames
    """frames per video"""
    video: bool = True
    """encode mp4s and thumbnails; --no-video skips them (benchmark-size catalogues; items then have no video_path)"""
    vague_title_fraction: float | None = None
    """items whose title names no attribute (None: the preset's)"""
    misleading_title_fraction: float | None = None
    """items whose title names another cluster's attribute (None: the preset's)"""
    visual_noise: float | None = None
    """items whose video shows another cluster's visual code (None: the preset's)"""
    tags_per_item: int | None = None
    """tags per item, 0 = no tags column (None: the preset's)"""
    tag_noise: float | None = None
    """chance that a tag names a random cluster instead of the item's own (None: the preset's)"""
    with_taxonomy: bool = False
    """also write the true taxonomy into items.parquet (build_tree then imports it instead of clustering)"""
    fresh_uploads: int = _WORLD.fresh_uploads
    """videos uploaded after the logs end, kept apart (fresh_items.parquet, fresh_videos/): the evaluation's
    cold-start segment; any count leaves the logged world unchanged (0: none)"""
    seed: int = _WORLD.seed
    """seed of every draw"""
    workers: int = _WORLD.workers
    """encoding processes"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """no progress bars"""


def run(job: MakeWorldJob) -> Path:
    """Generate and publish a world; returns its version directory."""
    config = replace(
        WorldConfig(**WORLD_PRESETS[job.preset]),
        num_items=job.items,
        num_users=job.users,
        branching=job.branching,
        seed=job.seed,
        frame_size=job.frame_size,
        fps=job.fps,
        num_frames=job.num_frames,
        with_video=job.video,
        include_taxonomy=job.with_taxonomy,
        sessions_per_user=job.sessions_per_user,
        session_length=job.session_length,
        workers=job.workers,
        fresh_uploads=job.fresh_uploads,
    )
    overrides = {
        "vague_title_fraction": job.vague_title_fraction,
        "misleading_title_fraction": job.misleading_title_fraction,
        "visual_noise": job.visual_noise,
        "tags_per_item": job.tags_per_item,
        "tag_noise": job.tag_noise,
    }
    config = replace(config, **{name: value for name, value in overrides.items() if value is not None})
    started = time.perf_counter()
    world_dir = generate_world(config, job.artifacts, progress=not job.quiet)
    counts = read_manifest(world_dir)["counts"]
    print(
        f"{counts['items']} items, {counts['users']} users, {counts['interactions']} interactions, "
        f"nodes per level {counts['nodes_per_level']}, in {time.perf_counter() - started:.1f} s"
    )
    return world_dir


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line; a data error ends as one line naming it."""
    return run_job(run, MakeWorldJob, argv, __doc__, "python -m serendip.jobs.make_world")


if __name__ == "__main__":
    main()
