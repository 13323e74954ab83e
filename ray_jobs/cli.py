"""Command-line pieces shared by the Ray jobs: Ray connection and pool size, logging."""

from __future__ import annotations

import argparse
import logging


def add_ray_arguments(parser: argparse.ArgumentParser, worker_noun: str) -> None:
    """--address / --num-cpus / --workers / --cpus-per-worker."""
    ray_group = parser.add_argument_group("ray")
    ray_group.add_argument(
        "--address",
        help="Ray cluster to join, e.g. 127.0.0.1:6379 (default: $RAY_ADDRESS as set by `ray job submit`, "
        "else a local Ray on 127.0.0.1)",
    )
    ray_group.add_argument("--num-cpus", type=int, help="CPUs of a local Ray started by this job (default: all)")
    ray_group.add_argument(
        "--workers", type=int, help=f"{worker_noun} actors (default: one per GPU, else per --cpus-per-worker CPUs)"
    )
    ray_group.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="CPUs (and threads) per actor (default: %(default)s)"
    )


def pool_size(requested: int | None, cpus_per_worker: float, gpus_per_worker: float = 0) -> int:
    """Actors to start: ``requested``, else as many as the cluster's GPUs (or CPUs) can hold at once."""
    from ray_jobs.ray_runtime import cluster_resource

    if requested is not None:
        if requested < 1:
            raise SystemExit(f"--workers must be >= 1, got {requested}")
        return requested
    if gpus_per_worker:
        return max(1, int(cluster_resource("GPU") // gpus_per_worker))
    return max(1, int(cluster_resource("CPU") // cpus_per_worker))


def configure_logging(quiet: bool) -> None:
    """Stage lines (items/s) on stderr; only warnings with --quiet."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s")
