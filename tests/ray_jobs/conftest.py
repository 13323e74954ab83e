"""Session fixtures of the Ray job tests: one tiny trained chain (world -> tree -> curation -> MLLM) and one Ray."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.models.mllm.prompts import PromptVariant
from serendip.pipeline import SMALL, run_pipeline


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
    config = dataclasses.replace(
        SMALL,
        world=dataclasses.replace(SMALL.world, items=96, users=200, seed=3),
        curation=dataclasses.replace(SMALL.curation, variants=("video_only",)),
        mllm=dataclasses.replace(
            SMALL.mllm, variant=PromptVariant.VIDEO_ONLY, steps=2, heldout_limit=2, checkpoint_every=2
        ),
    )
    built = run_pipeline(root, config, MLLM_KIND)
    return Chain(root, built[WORLD_KIND], built[MLLM_KIND], load_world(built[WORLD_KIND]).items)


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
