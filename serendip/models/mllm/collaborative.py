"""Collaborative context of the ``video_cot_rag`` planner (MMSRARec): each context item's related keywords.

The keywords of the items a context's viewers engaged with come from the ``keywords`` artifact
(``python -m ray_jobs.item_keywords``). A RAG planner carries the table it was trained with in its own artifact
(``related_keywords.parquet``), so every engine builds the same prompt for an item id without another input; an
item missing from it (a fresh upload, an item nobody engaged with) is prompted with ``NO_RELATED``. Refresh the
table by training again on a newer keywords version.

Training drops the keywords of a stable share of the examples (``related_dropout``), so the model also learns to
plan for contexts without a log -- the fresh uploads it will be asked about.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from serendip.artifacts.mllm import RELATED_KEYWORDS_FILE
from serendip.models.mllm.errors import ModelArtifactError
from serendip.models.mllm.examples import SftExample
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant, prompt_text


def save_related_keywords(directory: str | os.PathLike[str], related: Mapping[str, str]) -> Path:
    """Write the item id -> related keywords table a RAG planner is served with into its artifact directory."""
    path = Path(directory) / RELATED_KEYWORDS_FILE
    frame = pd.DataFrame({"item_id": list(related), "related_keywords": list(related.values())})
    frame.sort_values("item_id").to_parquet(path, index=False)
    return path


def load_related_keywords(directory: str | os.PathLike[str], spec: PlannerSpec) -> dict[str, str]:
    """The table of a RAG planner's artifact; empty for every other variant."""
    if not spec.variant.uses_related:
        return {}
    path = Path(directory) / RELATED_KEYWORDS_FILE
    if not path.is_file():
        raise ModelArtifactError(f"{directory} is a {spec.variant} planner but has no {RELATED_KEYWORDS_FILE}")
    frame = pd.read_parquet(path)
    return dict(zip(frame["item_id"], frame["related_keywords"], strict=True))


def keeps_related(example_id: str, dropout: float, seed: int) -> bool:
    """Whether a training example keeps its keywords (a stable draw per example and seed)."""
    return zlib.crc32(f"{seed}/{example_id}".encode()) / 2**32 >= dropout


def with_related_prompts(
    examples: Sequence[SftExample], related: Mapping[str, str], dropout: float = 0.0, seed: int = 0
) -> list[SftExample]:
    """``video_cot`` examples re-prompted as ``video_cot_rag`` with their context's related keywords; a
    ``dropout`` share of them (stable per example) gets none, like a context without a log."""
    variant = PromptVariant.VIDEO_COT_RAG
    rewritten = []
    for example in examples:
        keywords = related.get(example.context_item_id, "") if keeps_related(example.example_id, dropout, seed) else ""
        rewritten.append(replace(example, prompt=prompt_text(variant, "", keywords)))
    return rewritten
