"""``python -m serendip.jobs.curate``: mine serendipitous (context, cluster) pairs and write SFT examples.

Paper §2 / §4.1: keep (context v_i, next n_j) pairs that are serendipitous at (level, delta), aggregate the
satisfaction per (v_i, C(n_j)), keep the top-k context items per cluster, split held-out by context item,
guarantee every cluster description appears in training, and emit every example in each prompt variant
(text_only, video_only, video_text, video_cot) x frame mode (1/2/4/8 uniform frames, thumbnail) with frame
references decoded from the real mp4s. Writes ``<artifacts>/curation/<version>/``: examples.parquet,
sft.parquet, candidates.parquet, cluster_coverage.parquet, clusters.parquet, video_errors.parquet,
report.json, tree/ (the tree used), manifest.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from serendip.artifacts.curation import CURATION_KIND, save_curation
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, file_sha256, input_record, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import DataError
from serendip.core.prompts import FRAME_COUNTS, VARIANTS
from serendip.core.schema import load_dataset
from serendip.offline.curation import CurationConfig, config_to_dict, curate


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    defaults = CurationConfig()
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.curate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_argument_group("input")
    source.add_argument("--world", type=Path, help="world artifact (default: artifacts/world if no --items)")
    source.add_argument("--items", type=Path, help="your items.parquet (with --interactions)")
    source.add_argument("--interactions", type=Path, help="your interactions.parquet")
    source.add_argument("--media-root", type=Path, help="base of relative video/thumbnail paths (default: items' dir)")
    source.add_argument("--tree", type=Path, help="tree artifact (default: artifacts/tree)")
    selection = parser.add_argument_group("selection")
    selection.add_argument("--level", type=int, default=defaults.level, help="planning level l (default: %(default)s)")
    selection.add_argument("--delta", type=int, default=defaults.delta, help="serendipity delta (default: %(default)s)")
    selection.add_argument(
        "--top-k", type=int, default=defaults.top_k, help="context items per cluster (default: %(default)s)"
    )
    selection.add_argument(
        "--heldout-top-k", type=int, help="per cluster in the held-out split (default: top-k scaled by split size)"
    )
    selection.add_argument(
        "--heldout-fraction",
        type=float,
        default=defaults.heldout_fraction,
        help="of context items (default: %(default)s)",
    )
    selection.add_argument(
        "--min-pairs", type=int, default=defaults.min_pairs, help="pairs behind an aggregated p (default: %(default)s)"
    )
    selection.add_argument(
        "--allow-uncovered", action="store_true", help="warn instead of failing when a cluster has no pair at all"
    )
    output = parser.add_argument_group("prompts")
    output.add_argument(
        "--variants", type=_csv, default=VARIANTS, help=f"comma list of {', '.join(VARIANTS)} (default: all)"
    )
    output.add_argument(
        "--frame-counts",
        type=lambda text: tuple(int(part) for part in _csv(text)),
        default=FRAME_COUNTS,
        help="uniformly sampled frame counts (default: 1,2,4,8)",
    )
    output.add_argument("--no-thumbnail", action="store_true", help="omit the thumbnail frame mode")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="held-out split seed (default: %(default)s)")
    parser.add_argument(
        "--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="artifacts root (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.world is not None and (args.items or args.interactions):
        parser.error("give --world or --items/--interactions, not both")
    if (args.items is None) != (args.interactions is None):
        parser.error("--items and --interactions go together")
    if args.items is None and args.world is None:
        args.world = args.artifacts / WORLD_KIND
    args.tree = args.tree or args.artifacts / TREE_KIND
    return args


def main(argv: list[str] | None = None) -> Path:
    """Curate and publish SFT examples; returns the curation version directory."""
    args = parse_args(argv)
    started = time.perf_counter()
    config = CurationConfig(
        level=args.level,
        delta=args.delta,
        top_k=args.top_k,
        heldout_top_k=args.heldout_top_k,
        heldout_fraction=args.heldout_fraction,
        min_pairs=args.min_pairs,
        variants=args.variants,
        frame_counts=args.frame_counts,
        include_thumbnail=not args.no_thumbnail,
        seed=args.seed,
        allow_uncovered=args.allow_uncovered,
    )
    tree_dir = resolve_artifact(args.tree, TREE_KIND)
    tree = ClusterTree.load(tree_dir)
    inputs = {"tree": input_record(tree_dir)}
    truth_options = {}
    if args.world is not None:
        world = load_world(args.world)
        items, interactions, reports = world.items, world.interactions, (world.items_report, world.interactions_report)
        inputs["world"] = input_record(world.dir)
        truth = world.ground_truth
        truth_options = {
            "captions": world.captions,
            "truth_good_clusters": dict(zip(truth["item_id"], truth["good_clusters"].map(list), strict=True)),
            "truth_cluster_of": _truth_match(tree_dir),
        }
    else:
        dataset = load_dataset(args.items, args.interactions, args.media_root)
        items, interactions = dataset.items, dataset.interactions
        reports = (dataset.items_report, dataset.interactions_report)
        inputs["items"] = {"path": str(args.items), "sha256": file_sha256(args.items)}
        inputs["interactions"] = {"path": str(args.interactions), "sha256": file_sha256(args.interactions)}
    curation = curate(items, interactions, tree, config, progress=not args.quiet, **truth_options)
    curation.report["inputs"] = {report.table: report.to_dict() for report in reports}
    with ArtifactWriter(args.artifacts, CURATION_KIND, config_to_dict(config), inputs=inputs) as writer:
        save_curation(curation, tree, writer.dir)
        for report in reports:
            report.bad_rows.to_parquet(writer.dir / f"bad_rows_{report.table}.parquet", index=False)
        writer.counts.update(
            examples=curation.report["examples_kept"],
            sft_rows=curation.report["sft_rows"],
            clusters_covered_in_train=curation.report["clusters_covered_in_train"],
            clusters=curation.report["clusters"],
        )
    _print_report(curation.report, time.perf_counter() - started, writer.final_dir)
    return writer.final_dir


def _truth_match(tree_dir: Path) -> dict[str, str] | None:
    """Built level-l node -> majority true node, when the tree artifact recorded one (world inputs)."""
    path = tree_dir / "truth_match.parquet"
    if not path.is_file():
        return None
    table = pd.read_parquet(path)
    return dict(zip(table["node_id"], table["true_node_id"], strict=True))


def _print_report(report: dict, seconds: float, directory: Path) -> None:
    print(f"curation written to {directory} in {seconds:.1f} s")
    summary = {
        key: report[key]
        for key in (
            "pairs_seen",
            "pairs_similar",
            "pairs_serendipitous",
            "pairs_other",
            "pairs_unknown_item",
            "groups_with_min_pairs",
            "examples_kept",
            "sft_rows",
            "clusters",
            "clusters_covered_in_train",
            "clusters_with_full_top_k_in_train",
            "videos_unusable",
        )
    }
    if "label_precision_vs_truth" in report:
        summary["label_precision_vs_truth"] = report["label_precision_vs_truth"]
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"curate: {error}")
