"""Session fixtures of the Ray job tests: one tiny trained chain (world -> tree -> curation -> MLLM) and one Ray."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.world import load_world
from serendip.jobs import build_tree, curate, make_world, train_mllm


@dataclass(frozen=True)
class Chain:
    """Artifact root, the version dirs the jobs published, and the world's validated items."""

    root: Path
    world: Path
    mllm: Path
    items: pd.DataFrame


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """96-item world (2x2x3x2 taxonomy, 24-frame 64 px mp4s) and a video_only MLLM on 2 frames (2 steps)."""
    root = tmp_path_factory.mktemp("chain")
    common = ["--artifacts", str(root), "--quiet"]
    world = make_world.main(["--items", "96", "--users", "200", "--branching", "2,2,3,2", "--seed", "3", *common])
    build_tree.main(["--world", str(world), *common])
    curation = curate.main(["--world", str(world), "--variants", "video_only", "--frame-counts", "2", *common])
    mllm = train_mllm.main(
        ["--curation", str(curation), "--variant", "video_only", "--frames", "2", "--steps", "2"]
        + ["--batch-size", "4", "--heldout-limit", "2", "--checkpoint-every", "2", *common]
    )
    return Chain(root, world, mllm, load_world(world).items)


@pytest.fixture(scope="package")
def ray_address() -> Iterator[str]:
    """A local Ray (2 CPUs, 127.0.0.1 only) for these tests, shut down after them; its GCS address, for jobs run as
    subprocesses."""
    import ray

    from ray_jobs.ray_runtime import init_ray

    init_ray(num_cpus=2)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def write_items(items: pd.DataFrame, path: Path) -> Path:
    """Write a catalogue (validated item rows, absolute media paths) as items.parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    items.to_parquet(path, index=False)
    return path
