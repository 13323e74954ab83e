"""A complete artifact root at test size (200 items), built through the jobs' own entry points.

Used by ``make bench`` / ``python -m bench.loadtest`` when the given artifact root is incomplete, and by
``tests/bench``. Same stages and sizes as ``tests/planner/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

from serendip.artifacts.store import resolve_artifact
from serendip.core.errors import ArtifactError

REQUIRED_KINDS = ("world", "tree", "curation", "sasrec", "model_repository")


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
    from serendip.jobs import build_tree, curate, make_world, train_mllm, train_sasrec
    from triton_models import build_engines

    root.mkdir(parents=True, exist_ok=True)
    common = ["--artifacts", str(root), "--quiet"]
    world = make_world.main(["--items", "200", "--users", "300", "--branching", "2,2,3,2", "--seed", "7", *common])
    build_tree.main(["--world", str(world), *common])
    curation = curate.main(["--world", str(world), "--variants", "video_cot", "--frame-counts", "2", *common])
    train_mllm.main(
        ["--curation", str(curation), "--variant", "video_cot", "--frames", "2", "--steps", "4", "--batch-size", "4"]
        + ["--heldout-limit", "4", "--checkpoint-every", "4", *common]
    )
    train_sasrec.main(["--data", str(world), "--epochs", "2", "--artifacts", str(root)])
    build_engines.main(["--artifacts", str(root), "--mllm-queue-delay-us", "2000"])
    return root
