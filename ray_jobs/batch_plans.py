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

import argparse
import json
import sys
from pathlib import Path

from ray_jobs.cli import add_ray_arguments, configure_logging, pool_size
from ray_jobs.plans_job import DEFAULT_SHARD_SIZE, DEFAULT_TOP_N, PlanningModel, PlansResult, run_batch_plans
from ray_jobs.ray_runtime import cluster_resource, ray_session
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, resolve_artifact
from serendip.core.errors import ArtifactError, DataError
from serendip.models.mllm.errors import MllmError

ENGINES = ("torch", "tensorrt_llm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ray_jobs.batch_plans", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--frame-store", type=Path, help="frame store artifact (default: <artifacts>/frames)")
    inputs.add_argument("--mllm", type=Path, help="MLLM artifact (default: <artifacts>/mllm)")
    inputs.add_argument("--curation", type=Path, help="curation with the model's tree (default: the one it names)")
    model = parser.add_argument_group("planning")
    model.add_argument("--engine", choices=ENGINES, default="torch", help="planner engine (default: %(default)s)")
    model.add_argument("--top-n", type=int, default=DEFAULT_TOP_N, help="clusters kept per item (default: %(default)s)")
    model.add_argument(
        "--gpus-per-worker",
        type=float,
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0: CPU inference)",
    )
    runs = parser.add_argument_group("incremental runs")
    runs.add_argument("--full", action="store_true", help="plan every item, ignoring the previous plans version")
    runs.add_argument("--previous", type=Path, help="plans version to merge with (default: <artifacts>/plans LATEST)")
    runs.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help="items per committed shard; a small run is split so no worker idles (default: %(default)s)",
    )
    add_ray_arguments(parser, "planning")
    parser.add_argument(
        "--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="artifacts root (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or stage logs")
    args = parser.parse_args(argv)
    if args.full and args.previous is not None:
        parser.error("give --full or --previous, not both")
    if args.top_n < 1 or args.shard_size < 1:
        parser.error("--top-n and --shard-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> PlansResult:
    """Plan new and changed items and publish a merged plans version; returns what the run did."""
    args = parse_args(argv)
    configure_logging(args.quiet)
    store_dir = resolve_artifact(args.frame_store or args.artifacts / FRAMES_KIND, FRAMES_KIND)
    model = PlanningModel.load(args.mllm or args.artifacts / MLLM_KIND, args.curation)
    previous = None
    if not args.full:
        try:
            previous = resolve_artifact(args.previous or args.artifacts / PLANS_KIND, PLANS_KIND)
        except ArtifactError:
            if args.previous is not None:
                raise
    with ray_session(args.address, args.num_cpus):
        gpus_per_worker = args.gpus_per_worker
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if cluster_resource("GPU") else 0.0
        result = run_batch_plans(
            args.artifacts,
            store_dir,
            model,
            previous,
            engine=args.engine,
            top_n=args.top_n,
            shard_size=args.shard_size,
            workers=pool_size(args.workers, args.cpus_per_worker, gpus_per_worker),
            cpus_per_worker=args.cpus_per_worker,
            num_gpus=gpus_per_worker,
            progress=not args.quiet,
        )
    print(json.dumps(result.report(), indent=1))
    return result


if __name__ == "__main__":
    try:
        main()
    except (DataError, MllmError) as error:
        sys.exit(f"batch_plans: {error}")
