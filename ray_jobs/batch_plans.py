"""``python -m ray_jobs.batch_plans``: fill and refresh the plan table the Planner serves from (CACHE).

Reads the frame store (``--frame-store``, default ``<artifacts>/frames`` LATEST), ranks each item's
serendipitous clusters (its level-l node's siblings at δ, from the tree the MLLM was trained on) with the MLLM
(``--mllm``, default ``<artifacts>/mllm`` LATEST) on a Ray Data actor pool -- one model per actor, one GPU per
actor on a GPU cluster -- and publishes a new ``<artifacts>/plans/<version>/`` (plans.parquet,
processed.parquet, errors.parquet); the Planner hot-reloads it.

Incremental by default: only items that are new or whose content hash changed since the previous plans version
are planned, the rest are carried over; a new model version (or --top-n) re-plans everything; ``--full``
ignores the previous version. A run killed at any point and started again with the same inputs resumes: it
skips the shards it had committed and loses or duplicates nothing. See docs/ray_jobs.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ray_jobs.cli import RayOptions, configure_logging, emit_report, gpus_or_detected, pool_size, previous_version
from ray_jobs.plans_job import DEFAULT_SHARD_SIZE, DEFAULT_TOP_N, PlanningModel, PlansResult, run_batch_plans
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, resolve_artifact
from serendip.core.cli import parse_config
from serendip.core.errors import DataError
from serendip.models.mllm.errors import MllmError


@dataclass(frozen=True)
class BatchPlansJob(RayOptions):
    """Options of one planning run: the inputs, planning, incremental runs, the Ray pool."""

    frame_store: Path | None = None
    """frame store artifact (None: <artifacts>/frames)"""
    mllm: Path | None = None
    """MLLM artifact (None: <artifacts>/mllm)"""
    curation: Path | None = None
    """curation with the model's tree (None: the one it names)"""
    engine: Literal["torch", "tensorrt_llm"] = "torch"
    """planner engine"""
    top_n: int = DEFAULT_TOP_N
    """clusters kept per item"""
    gpus_per_worker: float | None = None
    """GPUs per actor (None: 1 when the cluster has GPUs, else 0: CPU inference)"""
    full: bool = False
    """plan every item, ignoring the previous plans version"""
    previous: Path | None = None
    """plans version to merge with (None: <artifacts>/plans LATEST)"""
    shard_size: int = DEFAULT_SHARD_SIZE
    """items per committed shard; a small run is split so no worker idles"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """no progress bars or stage logs"""

    def __post_init__(self) -> None:
        if self.full and self.previous is not None:
            raise ValueError("give --full or --previous, not both")
        if self.top_n < 1 or self.shard_size < 1:
            raise ValueError("--top-n and --shard-size must be >= 1")


def run(job: BatchPlansJob) -> PlansResult:
    """Plan new and changed items and publish a merged plans version; returns what the run did."""
    configure_logging(job.quiet)
    store_dir = resolve_artifact(job.frame_store or job.artifacts / FRAMES_KIND, FRAMES_KIND)
    model = PlanningModel.load(job.mllm or job.artifacts / MLLM_KIND, job.curation)
    previous = previous_version(job.previous, job.artifacts, PLANS_KIND, job.full)
    with ray_session(job.address, job.num_cpus):
        gpus_per_worker = gpus_or_detected(job.gpus_per_worker)
        result = run_batch_plans(
            job.artifacts,
            store_dir,
            model,
            previous,
            engine=job.engine,
            top_n=job.top_n,
            shard_size=job.shard_size,
            workers=pool_size(job.workers, job.cpus_per_worker, gpus_per_worker),
            cpus_per_worker=job.cpus_per_worker,
            num_gpus=gpus_per_worker,
            progress=not job.quiet,
        )
    emit_report(result.report(), job.report)
    return result


def main(argv: list[str] | None = None) -> PlansResult:
    """``run`` with options from the command line."""
    return run(parse_config(BatchPlansJob, argv, __doc__, "python -m ray_jobs.batch_plans"))


if __name__ == "__main__":
    try:
        main()
    except (DataError, MllmError) as error:
        sys.exit(f"batch_plans: {error}")
