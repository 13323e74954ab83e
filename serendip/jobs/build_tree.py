"""``python -m serendip.jobs.build_tree``: build the 4-level interest-cluster tree and report its quality.

Input: a world artifact (``--world``) or your own ``--items items.parquet`` (validated; one summary line per
table, bad rows in report.json) with, optionally, ``--interactions interactions.parquet``; by default
``<artifacts>/world``, else your catalogue imported as ``<artifacts>/items.parquet`` (+ interactions.parquet).
Items that all carry a ``taxonomy`` are imported as the tree (``--method auto``); otherwise, or with
``--method kmeans``, the tree comes from recursive traffic-weighted balanced k-means over co-engagement
(PMI + SVD of the interactions), text (title, description, tags) and visual (decoded frames) embeddings, each
block's weight chosen on held-out users' co-engagement unless given. Writes ``<artifacts>/tree/<version>/``:
tree.json, item_nodes.parquet, report.json (per level: sizes, count/traffic balance, text coherence, held-out
co-engagement lift, NMI/purity against the world's true taxonomy; the block weights and how they were chosen;
how the nodes were named), and, for worlds, truth_match.parquet (each built node's majority true node). Nodes are
described by their c-TF-IDF keywords (or taxonomy labels); with ``--namer-model DIR`` a local causal LM names them
instead, the keyword descriptions kept in report.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.catalogue import CatalogueSource, open_catalogue
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter
from serendip.core.cli import CommaInts, run_job
from serendip.core.cluster_tree import ClusterTree, level_column
from serendip.offline.node_naming import LocalCausalLM, rename_tree
from serendip.offline.tree_builder import (
    BalanceMode,
    TreeBuildConfig,
    TreeMethod,
    build_tree,
    majority_match,
    tree_report,
)

TREE_KIND = "tree"
_TREE = TreeBuildConfig()


@dataclass(frozen=True)
class BuildTreeJob(CatalogueSource):
    """Options of one tree build: the input (a world, or your items with interactions for the co-engagement
    embedding, weight choice and lift), the method and its parameters."""

    method: TreeMethod = _TREE.method
    """taxonomy imports the items' taxonomy column, kmeans clusters embeddings, auto: taxonomy if every item has one"""
    branching: CommaInts | None = None
    """children per node at levels 1..4 (None: the world's, else 3,3,4,2)"""
    balance_by: BalanceMode = _TREE.balance_by
    """equal item counts, or equal impressions, per node"""
    size_tolerance: float = _TREE.size_tolerance
    """a child may exceed its equal share of the parent by this fraction"""
    collaborative_weight: float | None = _TREE.collaborative_weight
    """weight of the co-engagement embedding (None: chosen on held-out co-engagement)"""
    text_weight: float | None = _TREE.text_weight
    """weight of the title/description/tags embedding (None: chosen on held-out co-engagement)"""
    visual_weight: float | None = _TREE.visual_weight
    """weight of the visual embedding (None: chosen on held-out co-engagement)"""
    frames_per_item: int = _TREE.frames_per_item
    """decoded for visual features"""
    seed: int = _TREE.seed
    """k-means seed"""
    workers: int = _TREE.workers
    """decoding processes"""
    namer_model: Path | None = None
    """local causal-LM checkpoint (a transformers directory) that names the nodes; without it nodes are named by
    their c-TF-IDF keywords"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """no progress bars"""


def run(job: BuildTreeJob) -> Path:
    """Build and publish a tree; returns its version directory."""
    started = time.perf_counter()
    catalogue = open_catalogue(job, job.artifacts)
    print(catalogue.summary())
    items, world = catalogue.items, catalogue.world
    truth = world.ground_truth if world is not None else None
    default_branching = tuple(world.manifest["parameters"]["branching"]) if world is not None else _TREE.branching
    config = TreeBuildConfig(
        method=job.method,
        branching=job.branching or default_branching,
        balance_by=job.balance_by,
        size_tolerance=job.size_tolerance,
        collaborative_weight=job.collaborative_weight,
        text_weight=job.text_weight,
        visual_weight=job.visual_weight,
        frames_per_item=job.frames_per_item,
        seed=job.seed,
        workers=job.workers,
    )
    namer = LocalCausalLM(job.namer_model, progress=not job.quiet) if job.namer_model is not None else None
    build = build_tree(items, config, progress=not job.quiet, interactions=catalogue.interactions)
    tree, descriptions = _named(build.tree, items, namer)
    report = tree_report(tree, items, truth, build.test_pairs)
    report.update(
        method=build.method,
        block_weights=build.weights,
        weight_selection=build.weight_selection,
        positive_pairs=build.pair_counts,
        items_without_interactions=build.items_without_interactions,
        items_input=catalogue.reports[0].to_dict(),
        items_without_video=build.items_without_video,
        video_errors=build.video_errors,
        descriptions=descriptions,
    )
    parameters = asdict(config) | ({"namer_model": str(job.namer_model)} if namer is not None else {})
    with ArtifactWriter(job.artifacts, TREE_KIND, parameters, inputs=catalogue.inputs) as writer:
        tree.save(writer.dir)
        (writer.dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        if truth is not None:
            rows = [
                {"level": level, "node_id": node, "true_node_id": true_node}
                for level in range(1, tree.num_levels + 1)
                if level_column(level) in truth
                for node, true_node in majority_match(tree, truth, level).items()
            ]
            pd.DataFrame(rows).to_parquet(writer.dir / "truth_match.parquet", index=False)
        writer.counts.update(
            items=len(items),
            nodes_per_level={level: len(tree.nodes_at(level)) for level in range(1, tree.num_levels + 1)},
            video_errors=len(build.video_errors),
        )
    _print_report(build.method, report, time.perf_counter() - started, writer.final_dir)
    return writer.final_dir


def _named(tree: ClusterTree, items: pd.DataFrame, namer: LocalCausalLM | None) -> tuple[ClusterTree, dict[str, Any]]:
    """``tree`` with its nodes named by ``namer`` (as built without one), and how the nodes were named."""
    if namer is None:
        return tree, {"method": "keywords"}
    return rename_tree(tree, items, namer)


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    return run_job(run, BuildTreeJob, argv, __doc__, "python -m serendip.jobs.build_tree")


def _print_report(method: str, report: dict, seconds: float, directory: Path) -> None:
    print(f"tree ({method}) of {report['items']} items written to {directory} in {seconds:.1f} s")
    if report.get("block_weights"):
        how = "chosen on held-out co-engagement" if report["weight_selection"] else "fixed"
        weights = ", ".join(f"{block} {weight:g}" for block, weight in report["block_weights"].items())
        print(f"  block weights ({how}): {weights}")
    print(_naming_line(report["descriptions"]))
    for level, entry in report["levels"].items():
        lift = f", co-engagement lift {entry['coengagement_lift']:.2f}" if "coengagement_lift" in entry else ""
        quality = f", NMI {entry['nmi']:.3f}, purity {entry['purity']:.3f}" if "nmi" in entry else ""
        print(
            f"  level {level}: {entry['nodes']} nodes, {entry['items_min']}-{entry['items_max']} items "
            f"(max/min {entry['size_balance_max_over_min']}), traffic max/min "
            f"{entry['traffic_balance_max_over_min']}{lift}, text coherence {entry['text_coherence']:.2f}{quality}"
        )
    if report["video_errors"]:
        print(f"  {len(report['video_errors'])} videos could not be decoded (see report.json)")


def _naming_line(descriptions: dict[str, Any]) -> str:
    """The report's line on how the nodes were named (``descriptions`` as in report.json)."""
    if descriptions["method"] == "keywords":
        return "  nodes named by their keywords (c-TF-IDF terms or taxonomy labels)"
    return (
        f"  nodes named by {descriptions['model']}: {descriptions['named']} generated names, "
        f"{descriptions['fallbacks']} fell back to their keywords (all keywords in report.json)"
    )


if __name__ == "__main__":
    main()
