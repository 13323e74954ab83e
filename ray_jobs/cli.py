"""Options shared by the Ray jobs: Ray connection and pool size, incremental runs, the run report, logging."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT


@dataclass(frozen=True)
class RayOptions:
    """The Ray options of a job: the cluster to join (or the local Ray to start), its actor pool, its report file."""

    address: str | None = None
    """Ray cluster to join, e.g. 127.0.0.1:6379 (None: $RAY_ADDRESS as set by `ray job submit`, else a local Ray)"""
    num_cpus: int | None = None
    """CPUs of a local Ray started by this job (None: all)"""
    workers: int | None = None
    """actors (None: one per GPU, else per --cpus-per-worker CPUs)"""
    cpus_per_worker: float = 1.0
    """CPUs (and threads) per actor"""
    report: Path | None = None
    """also write the run report (JSON: counts, stages, the node that ran each shard) to this file"""


@dataclass(frozen=True)
class IncrementalRunOptions:
    """The options of a job that publishes a new version of its output from the previous one, in committed shards."""

    full: bool = False
    """redo every item, ignoring the previous version of the job's output"""
    previous: Path | None = None
    """version of the job's output to carry items from (None: the LATEST under --artifacts)"""
    shard_size: int = 32
    """items per committed shard; a small run is split so no worker idles (each job declares its own default)"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """no progress bars or stage logs"""

    def __post_init__(self) -> None:
        checks_of_other_bases = getattr(super(), "__post_init__", None)  # e.g. CatalogueSource's, after this in the MRO
        if checks_of_other_bases is not None:
            checks_of_other_bases()
        if self.full and self.previous is not None:
            raise ValueError("give --full or --previous, not both")
        if self.shard_size < 1:
            raise ValueError("--shard-size must be >= 1")


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


def previous_version(explicit: Path | None, root: Path, kind: str, full: bool) -> Path | None:
    """The version an incremental run merges with: ``explicit``, else ``root/kind``'s LATEST when there is one;
    None with ``full``. An ``explicit`` version that does not resolve is an error."""
    from serendip.artifacts.store import resolve_artifact
    from serendip.core.errors import ArtifactError

    if full:
        return None
    try:
        return resolve_artifact(explicit or root / kind, kind)
    except ArtifactError:
        if explicit is not None:
            raise
        return None


def gpus_or_detected(gpus_per_worker: float | None) -> float:
    """``gpus_per_worker``, else 1 when the Ray cluster has GPUs and 0 (CPU inference) when it has none."""
    from ray_jobs.ray_runtime import cluster_resource

    if gpus_per_worker is not None:
        return gpus_per_worker
    return 1.0 if cluster_resource("GPU") else 0.0


def emit_report(report: dict[str, Any], path: Path | None) -> None:
    """Print the run report as JSON on stdout and, given a ``path``, write it there too (atomically)."""
    text = json.dumps(report, indent=1)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text + "\n")
        os.replace(partial, path)


def configure_logging(quiet: bool) -> None:
    """Stage lines (items/s) on stderr; only warnings with --quiet."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s")
