"""Options shared by the Ray jobs: Ray connection and pool size, logging."""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class RayOptions:
    """The Ray options of a job: the cluster to join (or the local Ray to start) and its actor pool."""

    address: str | None = None
    """Ray cluster to join, e.g. 127.0.0.1:6379 (None: $RAY_ADDRESS as set by `ray job submit`, else a local Ray)"""
    num_cpus: int | None = None
    """CPUs of a local Ray started by this job (None: all)"""
    workers: int | None = None
    """actors (None: one per GPU, else per --cpus-per-worker CPUs)"""
    cpus_per_worker: float = 1.0
    """CPUs (and threads) per actor"""


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
