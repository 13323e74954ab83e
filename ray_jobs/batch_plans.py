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

from ray_jobs.model_job import FrameStoreModelJob
from ray_jobs.plans_job import DEFAULT_TOP_N, PlansResult, run_batch_plans
from serendip.artifacts.plans import PLANS_KIND
from serendip.core.cli import parse_config
from serendip.core.errors import DataError
from serendip.models.mllm.errors import MllmError


@dataclass(frozen=True)
class BatchPlansJob(FrameStoreModelJob):
    """Options of one planning run: the inputs, planning, incremental runs, the Ray pool."""

    top_n: int = DEFAULT_TOP_N
    """clusters kept per item"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_n < 1:
            raise ValueError("--top-n must be >= 1")


def run(job: BatchPlansJob) -> PlansResult:
    """Plan new and changed items and publish a merged plans version; returns what the run did."""
    return job.run_on_ray(PLANS_KIND, run_batch_plans, top_n=job.top_n)


def main(argv: list[str] | None = None) -> PlansResult:
    """``run`` with options from the command line."""
    return run(parse_config(BatchPlansJob, argv, __doc__, "python -m ray_jobs.batch_plans"))


if __name__ == "__main__":
    try:
        main()
    except (DataError, MllmError) as error:
        sys.exit(f"batch_plans: {error}")
