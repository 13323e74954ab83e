"""``python -m serendip.jobs.make_world``: generate the synthetic micro-video world (deterministic by seed).

Writes ``<artifacts>/world/<version>/``: items.parquet and interactions.parquet (the bring-your-own schema),
videos/*.mp4 (H.264) and thumbnails/*.jpg, media.parquet (per-video hash, frame count, thumbnail frame),
users.parquet, ground_truth.parquet (true taxonomy path, visual attributes, truly good serendipitous clusters,
visual richness, video caption), true_tree/ (the true taxonomy as a ClusterTree), and manifest.json.
See docs/data.md for the design.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, read_manifest
from serendip.core.errors import DataError
from serendip.offline.tree_builder import parse_branching
from serendip.offline.world import WorldConfig, generate_world


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults: the demo world, ~10-20 s on 2 cores)."""
    defaults = WorldConfig()
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.make_world",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_argument_group("size")
    size.add_argument("--items", type=int, default=defaults.num_items, help="number of videos (default: %(default)s)")
    size.add_argument("--users", type=int, default=defaults.num_users, help="number of users (default: %(default)s)")
    size.add_argument(
        "--branching",
        type=parse_branching,
        default=defaults.branching,
        help="children per node at levels 1..4, at most 7,7,8,4 (default: 3,3,4,2 = 36 level-3 clusters)",
    )
    size.add_argument(
        "--sessions-per-user", type=float, default=defaults.sessions_per_user, help="mean (default: %(default)s)"
    )
    size.add_argument(
        "--session-length", type=float, default=defaults.session_length, help="mean (default: %(default)s)"
    )
    video = parser.add_argument_group("video")
    video.add_argument(
        "--frame-size", type=int, default=defaults.frame_size, help="pixels, square (default: %(default)s)"
    )
    video.add_argument("--fps", type=int, default=defaults.fps, help="default: %(default)s")
    video.add_argument(
        "--num-frames", type=int, default=defaults.num_frames, help="frames per video (default: %(default)s)"
    )
    video.add_argument(
        "--no-video",
        action="store_true",
        help="skip mp4/thumbnail encoding (benchmark-size catalogues); items then have no video_path",
    )
    content = parser.add_argument_group("content")
    content.add_argument(
        "--vague-title-fraction", type=float, default=defaults.vague_title_fraction, help="default: %(default)s"
    )
    content.add_argument(
        "--misleading-title-fraction",
        type=float,
        default=defaults.misleading_title_fraction,
        help="default: %(default)s",
    )
    content.add_argument(
        "--with-taxonomy",
        action="store_true",
        help="also write the true taxonomy into items.parquet (build_tree then imports it instead of clustering)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="encoding processes (default: %(default)s)"
    )
    parser.add_argument(
        "--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="artifacts root (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    """Generate and publish a world; returns its version directory."""
    args = parse_args(argv)
    config = WorldConfig(
        num_items=args.items,
        num_users=args.users,
        branching=args.branching,
        seed=args.seed,
        frame_size=args.frame_size,
        fps=args.fps,
        num_frames=args.num_frames,
        with_video=not args.no_video,
        include_taxonomy=args.with_taxonomy,
        vague_title_fraction=args.vague_title_fraction,
        misleading_title_fraction=args.misleading_title_fraction,
        sessions_per_user=args.sessions_per_user,
        session_length=args.session_length,
        workers=args.workers,
    )
    started = time.perf_counter()
    world_dir = generate_world(config, args.artifacts, progress=not args.quiet)
    counts = read_manifest(world_dir)["counts"]
    print(
        f"{counts['items']} items, {counts['users']} users, {counts['interactions']} interactions, "
        f"nodes per level {counts['nodes_per_level']}, in {time.perf_counter() - started:.1f} s"
    )
    return world_dir


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"make_world: {error}")
