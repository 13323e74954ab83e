"""A complete artifact root at test size (200 items), built through the stage graph (``serendip.pipeline``).

Used by ``make bench`` / ``python -m bench.loadtest`` when the given artifact root is incomplete, and by
``tests/bench``: the ``SMALL`` preset up to the model repository, as the Planner tests build it.
"""

from __future__ import annotations

from pathlib import Path

from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.store import resolve_artifact
from serendip.core.errors import ArtifactError
from serendip.pipeline import KINDS, SMALL, run_pipeline

REQUIRED_KINDS = KINDS[: KINDS.index(REPOSITORY_KIND) + 1]


def missing_kinds(root: Path) -> list[str]:
    """Artifact kinds the load test needs that ``root`` does not hold."""
    missing = []
    for kind in REQUIRED_KINDS:
        try:
            resolve_artifact(root, kind)
        except (ArtifactError, FileNotFoundError):
            missing.append(kind)
    return missing


def build_small_artifacts(root: Path) -> Path:
    """world (200 items) -> tree -> curation -> MLLM (4 steps) -> SASRec -> model repository; returns ``root``."""
    run_pipeline(root, SMALL, until=REPOSITORY_KIND, log=lambda _: None)
    return root
