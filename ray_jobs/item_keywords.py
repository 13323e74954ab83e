"""``python -m ray_jobs.item_keywords``: a keyword summary per catalogue item, and its related keywords (MMSRARec).

Reads the frame store (``--frame-store``, default ``<artifacts>/frames`` LATEST) and asks the chain-of-thought MLLM
(``--mllm``, default ``<artifacts>/mllm`` LATEST; it must be a video_cot model) what each item's video shows, on a
Ray Data actor pool -- one model per actor, one GPU per actor on a GPU cluster; an item's keywords are the first
content words of that description. Then each item's related keywords are the keywords of its most co-engaged
items in the world's interactions (``--world``, default ``<artifacts>/world`` LATEST). Publishes a new
``<artifacts>/keywords/<version>/``: keywords.parquet, related.parquet, errors.parquet.

Incremental by default: an item is summarised again only when it is new, its content hash changed or the model
version changed since the previous keywords version (a new model redoes every item); the rest are carried over;
items that failed are retried; ``--full`` ignores the previous version. A run killed at any point and started
again with the same inputs resumes: it skips the shards it had committed. See docs/ray_jobs.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ray_jobs.cli import RayOptions, configure_logging, emit_report, gpus_or_detected, pool_size, previous_version
from ray_jobs.keywords_job import DEFAULT_SHARD_SIZE, KeywordsResult, run_item_keywords
from ray_jobs.plans_job import PlanningModel
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.keywords import KEYWORDS_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cli import parse_config
from serendip.core.errors import DataError
from serendip.models.mllm.errors import MllmError


@dataclass(frozen=True)
class ItemKeywordsJob(RayOptions):
    """Options of one keywords run: the inputs, incremental runs, the Ray pool."""

    frame_store: Path | None = None
    """frame store artifact (None: <artifacts>/frames)"""
    mllm: Path | None = None
    """chain-of-thought (video_cot) MLLM artifact (None: <artifacts>/mllm)"""
    curation: Path | None = None
    """curation with the model's tree (None: the one it names)"""
    world: Path | None = None
    """world artifact whose interactions give the related keywords (None: <artifacts>/world)"""
    engine: Literal["torch", "tensorrt_llm"] = "torch"
    """planner engine"""
    gpus_per_worker: float | None = None
    """GPUs per actor (None: 1 when the cluster has GPUs, else 0: CPU inference)"""
    full: bool = False
    """summarise every item, ignoring the previous keywords version"""
    previous: Path | None = None
    """keywords version to merge with (None: <artifacts>/keywords LATEST)"""
    shard_size: int = DEFAULT_SHARD_SIZE
    """items per committed shard; a small run is split so no worker idles"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """no progress bars or stage logs"""

    def __post_init__(self) -> None:
        if self.full and self.previous is not None:
            raise ValueError("give --full or --previous, not both")
        if self.shard_size < 1:
            raise ValueError("--shard-size must be >= 1")


def run(job: ItemKeywordsJob) -> KeywordsResult:
    """Summarise new and changed items and publish a merged keywords version; returns what the run did."""
    configure_logging(job.quiet)
    store_dir = resolve_artifact(job.frame_store or job.artifacts / FRAMES_KIND, FRAMES_KIND)
    model = PlanningModel.load(job.mllm or job.artifacts / MLLM_KIND, job.curation)
    world_dir = resolve_artifact(job.world or job.artifacts / WORLD_KIND, WORLD_KIND)
    previous = previous_version(job.previous, job.artifacts, KEYWORDS_KIND, job.full)
    with ray_session(job.address, job.num_cpus):
        gpus_per_worker = gpus_or_detected(job.gpus_per_worker)
        result = run_item_keywords(
            job.artifacts,
            store_dir,
            model,
            world_dir,
            previous,
            engine=job.engine,
            shard_size=job.shard_size,
            workers=pool_size(job.workers, job.cpus_per_worker, gpus_per_worker),
            cpus_per_worker=job.cpus_per_worker,
            num_gpus=gpus_per_worker,
            progress=not job.quiet,
        )
    emit_report(result.report(), job.report)
    return result


def main(argv: list[str] | None = None) -> KeywordsResult:
    """``run`` with options from the command line."""
    return run(parse_config(ItemKeywordsJob, argv, __doc__, "python -m ray_jobs.item_keywords"))


if __name__ == "__main__":
    try:
        main()
    except (DataError, MllmError) as error:
        sys.exit(f"item_keywords: {error}")
