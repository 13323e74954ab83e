"""``python -m serendip.jobs.curate``: mine serendipitous (context, cluster) pairs and write SFT examples.

Paper §2 / §4.1: keep (context v_i, next n_j) pairs that are serendipitous at (level, delta), aggregate the
satisfaction per (v_i, C(n_j)), keep the top-k context items per cluster, split held-out by context item,
guarantee every cluster description appears in training, and emit every example in each prompt variant
(text_only, video_only, video_text, video_cot) x frame mode (1/2/4/8 uniform frames, thumbnail) with frame
references decoded from the real mp4s. Input: a world artifact or your items and interactions (one summary
line per table; by default ``<artifacts>/world``, else ``<artifacts>/items.parquet`` + interactions.parquet).
Writes ``<artifacts>/curation/<version>/``: examples.parquet, sft.parquet, candidates.parquet,
cluster_coverage.parquet, clusters.parquet, video_errors.parquet, report.json, tree/ (the tree used),
manifest.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serendip.artifacts.catalogue import CatalogueSource, open_catalogue
from serendip.artifacts.curation import CURATION_KIND, save_curation
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.core.cli import CommaInts, CommaNames, run_job
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import SchemaError
from serendip.core.prompts import FRAME_COUNTS, VARIANTS
from serendip.offline.curation import CurationConfig, config_to_dict, curate

_CURATION = CurationConfig()


@dataclass(frozen=True)
class CurateJob(CatalogueSource):
    """Options of one curation: the input (a world or your items and interactions), the selection, the prompts."""

    tree: Path | None = None
    """tree artifact (None: <artifacts>/tree)"""
    level: int = _CURATION.level
    """planning level l"""
    delta: int = _CURATION.delta
    """serendipity delta"""
    top_k: int = _CURATION.top_k
    """context items per cluster"""
    heldout_top_k: int | None = None
    """per cluster in the held-out split (None: top-k scaled by split size)"""
    heldout_fraction: float = _CURATION.heldout_fraction
    """of context items"""
    min_pairs: int = _CURATION.min_pairs
    """pairs behind an aggregated p"""
    allow_uncovered: bool = False
    """warn instead of failing when a cluster has no pair at all"""
    variants: CommaNames = VARIANTS
    """prompt variants, a comma list of text_only, video_only, video_text, video_cot"""
    frame_counts: CommaInts = FRAME_COUNTS
    """uniformly sampled frame counts"""
    thumbnail: bool = True
    """also the thumbnail frame mode (--no-thumbnail omits it)"""
    seed: int = _CURATION.seed
    """held-out split seed"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """no progress bars"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.items is not None and self.interactions is None:
            raise ValueError("--items and --interactions go together")


def run(job: CurateJob) -> Path:
    """Curate and publish SFT examples; returns the curation version directory."""
    started = time.perf_counter()
    config = CurationConfig(
        level=job.level,
        delta=job.delta,
        top_k=job.top_k,
        heldout_top_k=job.heldout_top_k,
        heldout_fraction=job.heldout_fraction,
        min_pairs=job.min_pairs,
        variants=job.variants,
        frame_counts=job.frame_counts,
        include_thumbnail=job.thumbnail,
        seed=job.seed,
        allow_uncovered=job.allow_uncovered,
    )
    tree_dir = resolve_artifact(job.tree or job.artifacts / TREE_KIND, TREE_KIND)
    tree = ClusterTree.load(tree_dir)
    inputs = {"tree": input_record(tree_dir)}
    catalogue = open_catalogue(job, job.artifacts)
    print(catalogue.summary())
    if catalogue.interactions is None:
        raise SchemaError(
            f"curation needs interactions: {catalogue.inputs['items']['path']} came without them "
            f"(pass --interactions, or put interactions.parquet next to it)"
        )
    inputs.update(catalogue.inputs)
    truth_options = {}
    if catalogue.world is not None:
        truth = catalogue.world.ground_truth
        truth_options = {
            "captions": catalogue.world.captions,
            "truth_good_clusters": dict(zip(truth["item_id"], truth["good_clusters"].map(list), strict=True)),
            "truth_cluster_of": _truth_match(tree_dir),
        }
    curation = curate(catalogue.items, catalogue.interactions, tree, config, progress=not job.quiet, **truth_options)
    curation.report["inputs"] = {report.table: report.to_dict() for report in catalogue.reports}
    with ArtifactWriter(job.artifacts, CURATION_KIND, config_to_dict(config), inputs=inputs) as writer:
        save_curation(curation, tree, writer.dir)
        for report in catalogue.reports:
            report.bad_rows.to_parquet(writer.dir / f"bad_rows_{report.table}.parquet", index=False)
        writer.counts.update(
            examples=curation.report["examples_kept"],
            sft_rows=curation.report["sft_rows"],
            clusters_covered_in_train=curation.report["clusters_covered_in_train"],
            clusters=curation.report["clusters"],
        )
    _print_report(curation.report, time.perf_counter() - started, writer.final_dir)
    if len(curation.video_errors):
        first = curation.video_errors.iloc[0]
        print(
            f"{len(curation.video_errors)} context items skipped, video or thumbnail unusable "
            f"(first: {first['item_id']}: {first['error']}; all in video_errors.parquet)"
        )
    return writer.final_dir


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    return run_job(run, CurateJob, argv, __doc__, "python -m serendip.jobs.curate")


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
            "video_variants",
        )
    }
    if "frame_modes" in report:
        summary["frame_modes"] = report["frame_modes"]
    if "label_precision_vs_truth" in report:
        summary["label_precision_vs_truth"] = report["label_precision_vs_truth"]
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
