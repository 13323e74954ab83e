"""``python -m serendip.jobs.build_tree``: build the 4-level interest-cluster tree and report its quality.

Input: a world artifact (``--world``) or your own ``--items items.parquet`` (validated; bad rows reported).
Items that all carry a ``taxonomy`` are imported as the tree (``--method auto``); otherwise, or with
``--method kmeans``, the tree comes from recursive traffic-weighted balanced k-means over title-text and
visual (decoded frames) embeddings. Writes ``<artifacts>/tree/<version>/``: tree.json, item_nodes.parquet,
report.json (sizes, count/traffic balance per level, NMI/purity against the world's true taxonomy), and,
for worlds, truth_match.parquet (each built node's majority true node).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, file_sha256, input_record, read_manifest
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.core.cluster_tree import level_column
from serendip.core.errors import DataError
from serendip.core.schema import load_items
from serendip.offline.tree_builder import (
    BALANCE_MODES,
    METHODS,
    TreeBuildConfig,
    build_tree,
    majority_match,
    parse_branching,
    tree_report,
)

TREE_KIND = "tree"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    defaults = TreeBuildConfig()
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.build_tree",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input (one of)")
    source.add_argument(
        "--world", type=Path, help="world artifact: version dir or kind dir (default: artifacts/world if no --items)"
    )
    source.add_argument("--items", type=Path, help="your items.parquet (see docs/data.md for the schema)")
    source.add_argument("--media-root", type=Path, help="base of relative video/thumbnail paths (default: items' dir)")
    method = parser.add_argument_group("tree")
    method.add_argument("--method", choices=METHODS, default=defaults.method, help="default: %(default)s")
    method.add_argument(
        "--branching",
        type=parse_branching,
        help="children per node at levels 1..4 (default: the world's, else 3,3,4,2)",
    )
    method.add_argument(
        "--balance-by",
        choices=BALANCE_MODES,
        default=defaults.balance_by,
        help="equal item counts, or equal impressions, per node (default: %(default)s)",
    )
    method.add_argument(
        "--size-tolerance",
        type=float,
        default=defaults.size_tolerance,
        help="a child may exceed its equal share of the parent by this fraction (default: %(default)s)",
    )
    method.add_argument("--text-weight", type=float, default=defaults.text_weight, help="default: %(default)s")
    method.add_argument("--visual-weight", type=float, default=defaults.visual_weight, help="default: %(default)s")
    method.add_argument(
        "--frames-per-item",
        type=int,
        default=defaults.frames_per_item,
        help="decoded for visual features (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="decoding processes (default: %(default)s)"
    )
    parser.add_argument(
        "--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="artifacts root (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.world is not None and args.items is not None:
        parser.error("give --world or --items, not both")
    if args.items is None and args.world is None:
        args.world = args.artifacts / WORLD_KIND
    return args


def main(argv: list[str] | None = None) -> Path:
    """Build and publish a tree; returns its version directory."""
    args = parse_args(argv)
    started = time.perf_counter()
    truth = None
    if args.world is not None:
        world = load_world(args.world)
        items, items_report, truth = world.items, world.items_report, world.ground_truth
        inputs = {"world": input_record(world.dir)}
        default_branching = tuple(read_manifest(world.dir)["parameters"]["branching"])
    else:
        items, items_report = load_items(args.items, args.media_root)
        inputs = {"items": {"path": str(args.items), "sha256": file_sha256(args.items)}}
        default_branching = TreeBuildConfig().branching
    config = TreeBuildConfig(
        method=args.method,
        branching=args.branching or default_branching,
        balance_by=args.balance_by,
        size_tolerance=args.size_tolerance,
        text_weight=args.text_weight,
        visual_weight=args.visual_weight,
        frames_per_item=args.frames_per_item,
        seed=args.seed,
        workers=args.workers,
    )
    build = build_tree(items, config, progress=not args.quiet)
    report = tree_report(build.tree, items, truth)
    report.update(
        method=build.method,
        items_input=items_report.to_dict(),
        items_without_video=build.items_without_video,
        video_errors=build.video_errors,
    )
    with ArtifactWriter(args.artifacts, TREE_KIND, asdict(config), inputs=inputs) as writer:
        build.tree.save(writer.dir)
        (writer.dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        if truth is not None:
            rows = [
                {"level": level, "node_id": node, "true_node_id": true_node}
                for level in range(1, build.tree.num_levels + 1)
                if level_column(level) in truth
                for node, true_node in majority_match(build.tree, truth, level).items()
            ]
            pd.DataFrame(rows).to_parquet(writer.dir / "truth_match.parquet", index=False)
        writer.counts.update(
            items=len(items),
            nodes_per_level={level: len(build.tree.nodes_at(level)) for level in range(1, build.tree.num_levels + 1)},
            video_errors=len(build.video_errors),
        )
    _print_report(build.method, report, time.perf_counter() - started, writer.final_dir)
    return writer.final_dir


def _print_report(method: str, report: dict, seconds: float, directory: Path) -> None:
    print(f"tree ({method}) of {report['items']} items written to {directory} in {seconds:.1f} s")
    for level, entry in report["levels"].items():
        quality = f", NMI {entry['nmi']:.3f}, purity {entry['purity']:.3f}" if "nmi" in entry else ""
        print(
            f"  level {level}: {entry['nodes']} nodes, {entry['items_min']}-{entry['items_max']} items "
            f"(max/min {entry['size_balance_max_over_min']}), traffic max/min "
            f"{entry['traffic_balance_max_over_min']}{quality}"
        )
    if report["video_errors"]:
        print(f"  {len(report['video_errors'])} videos could not be decoded (see report.json)")


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"build_tree: {error}")
