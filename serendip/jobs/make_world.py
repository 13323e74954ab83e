"""``python -m serendip.jobs.make_world``: generate the synthetic micro-video world (deterministic by seed).

Writes ``<artifacts>/world/<version>/``: items.parquet and interactions.parquet (the bring-your-own schema),
videos/*.mp4 (H.264) and thumbnails/*.jpg, media.parquet (per-video hash, frame count, thumbnail frame),
users.parquet, ground_truth.parquet (true taxonomy path, visual attributes, truly good serendipitous clusters,
visual richness, video caption), true_tree/ (the true taxonomy as a ClusterTree), and manifest.json.
See docs/data.md for the design.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, read_manifest
from serendip.core.cli import CommaInts, parse_config
from serendip.core.errors import DataError
from serendip.offline.world import WorldConfig, generate_world

_WORLD = WorldConfig()


@dataclass(frozen=True)
class MakeWorldJob:
    """Options of one world (defaults: the demo world, ~10-20 s on 2 cores)."""

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
    vague_title_fraction: float = _WORLD.vague_title_fraction
    """items whose title names no attribute"""
    misleading_title_fraction: float = _WORLD.misleading_title_fraction
    """items whose title names another cluster's attribute"""
    with_taxonomy: bool = False
    """also write the true taxonomy into items.parquet (build_tree then imports it instead of clustering)"""
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
    config = WorldConfig(
        num_items=job.items,
        num_users=job.users,
        branching=job.branching,
        seed=job.seed,
        frame_size=job.frame_size,
        fps=job.fps,
        num_frames=job.num_frames,
        with_video=job.video,
        include_taxonomy=job.with_taxonomy,
        vague_title_fraction=job.vague_title_fraction,
        misleading_title_fraction=job.misleading_title_fraction,
        sessions_per_user=job.sessions_per_user,
        session_length=job.session_length,
        workers=job.workers,
    )
    started = time.perf_counter()
    world_dir = generate_world(config, job.artifacts, progress=not job.quiet)
    counts = read_manifest(world_dir)["counts"]
    print(
        f"{counts['items']} items, {counts['users']} users, {counts['interactions']} interactions, "
        f"nodes per level {counts['nodes_per_level']}, in {time.perf_counter() - started:.1f} s"
    )
    return world_dir


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    return run(parse_config(MakeWorldJob, argv, __doc__, "python -m serendip.jobs.make_world"))


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"make_world: {error}")
