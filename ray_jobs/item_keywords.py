"""``python -m ray_jobs.item_keywords``: a keyword summary per catalogue item, and its related keywords (MMSRARec).

Reads the frame store (``--frame-store``, default ``<artifacts>/frames`` LATEST) and asks the chain-of-thought MLLM
(``--mllm``, default ``<artifacts>/mllm`` LATEST; it must be a video_cot model) what each item's video shows, on a
Ray Data actor pool -- one model per actor, one GPU per actor on a GPU cluster; an item's keywords are the first
content words of that description. Then each item's related keywords are the keywords of its most co-engaged
items in the world's interactions (``--world``, default ``<artifacts>/world`` LATEST). Publishes a new
``<artifacts>/keywords/<version>/``: keywords.parquet, related.parquet, errors.parquet.

Incremental by default: an item is summarised again only when it is new, its content hash changed or the model
version changed since the previous keywords version (a new model redoes every item); the rest are carried over;
items that failed are retried; ``--full`` ignores the previous version. A run killed at any point and started
again with the same inputs resumes: it skips the shards it had committed. See docs/ray_jobs.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ray_jobs.keywords_job import KeywordsResult, run_item_keywords
from ray_jobs.model_job import FrameStoreModelJob
from serendip.artifacts.keywords import KEYWORDS_KIND
from serendip.artifacts.store import resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cli import parse_config
from serendip.core.errors import DataError
from serendip.models.mllm.errors import MllmError


@dataclass(frozen=True)
class ItemKeywordsJob(FrameStoreModelJob):
    """Options of one keywords run (``--mllm``: a chain-of-thought, video_cot, model): the inputs, incremental
    runs, the Ray pool."""

    world: Path | None = None
    """world artifact whose interactions give the related keywords (None: <artifacts>/world)"""


def run(job: ItemKeywordsJob) -> KeywordsResult:
    """Summarise new and changed items and publish a merged keywords version; returns what the run did."""
    world_dir = resolve_artifact(job.world or job.artifacts / WORLD_KIND, WORLD_KIND)
    return job.run_on_ray(KEYWORDS_KIND, run_item_keywords, world_dir)


def main(argv: list[str] | None = None) -> KeywordsResult:
    """``run`` with options from the command line."""
    return run(parse_config(ItemKeywordsJob, argv, __doc__, "python -m ray_jobs.item_keywords"))


if __name__ == "__main__":
    try:
        main()
    except (DataError, MllmError) as error:
        sys.exit(f"item_keywords: {error}")
