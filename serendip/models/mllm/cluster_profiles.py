"""Cluster profiles of the ``video_cot_profiles`` planner: each planning-level cluster described by what its videos
show, listed in the prompt next to the candidate's description.

A planner that has read the video still has to know which candidate cluster looks like what it saw; with 360
examples for 36 clusters that mapping is the hard part. A profile states it: the ``PROFILE_PHRASES`` most
distinctive phrases of the video descriptions (the chain-of-thought texts of the curation) of the cluster's
training context items. Phrases are the comma-separated parts of a description; a phrase scores the share of the
cluster's items that use it times ``log(clusters / clusters using it)``, so phrases every cluster uses score 0.
Profiles are computed from the curation when training and kept in the MLLM artifact (``cluster_profiles.json``);
every engine lists a context's candidates with their profiles in cluster id order.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from serendip.artifacts.curation import CurationArtifact
from serendip.artifacts.mllm import CLUSTER_PROFILES_FILE
from serendip.core.prompts import THOUGHT_LEAD
from serendip.models.mllm.errors import ModelArtifactError
from serendip.models.mllm.examples import PlanningTask, SftExample
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant, prompt_text

PROFILE_PHRASES = 3
UNKNOWN_PROFILE = "no profile"


def description_phrases(description: str) -> list[str]:
    """The distinct phrases of a video description: its comma-, period- or 'and'-separated parts, lower case."""
    text = description.lower().removeprefix(THOUGHT_LEAD)
    parts = (" ".join(part.split()) for part in re.split(r"[,.;\n]| and ", text))
    return list(dict.fromkeys(part for part in parts if part))


def cluster_profiles(descriptions_of: Mapping[str, Sequence[str]], phrases: int = PROFILE_PHRASES) -> dict[str, str]:
    """Cluster id -> its ``phrases`` most distinctive phrases (comma-joined) over its items' descriptions."""
    counts = {
        cluster: Counter(p for d in texts for p in description_phrases(d)) for cluster, texts in descriptions_of.items()
    }
    clusters_using = Counter(phrase for counter in counts.values() for phrase in counter)
    profiles = {}
    for cluster, counter in counts.items():
        items = max(len(descriptions_of[cluster]), 1)
        scored = [
            (count / items * math.log(len(counts) / clusters_using[phrase]), phrase)
            for phrase, count in counter.items()
        ]
        best = sorted((item for item in scored if item[0] > 0), key=lambda item: (-item[0], item[1]))[:phrases]
        profiles[cluster] = ", ".join(phrase for _, phrase in best)
    return profiles


def curation_profiles(curation: CurationArtifact) -> dict[str, str]:
    """Profiles of every planning-level cluster with training contexts, from their video descriptions."""
    examples = curation.curation.examples
    train = examples[examples["split"] == "train"].drop_duplicates("context_item_id")
    descriptions_of: dict[str, list[str]] = {}
    for cluster, text in zip(train["context_cluster_id"], train["video_description"].fillna(""), strict=True):
        descriptions_of.setdefault(cluster, []).append(text)
    return cluster_profiles(descriptions_of)


def candidate_profiles(
    candidate_ids: Sequence[str] | None, descriptions: Mapping[str, str], profiles: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(description, profile) of each candidate cluster in id order; empty when the candidates are unknown."""
    return [
        (descriptions[cluster], profiles.get(cluster) or UNKNOWN_PROFILE) for cluster in sorted(candidate_ids or ())
    ]


def with_profile_prompts(
    examples: Sequence[SftExample], task: PlanningTask, profiles: Mapping[str, str]
) -> list[SftExample]:
    """``video_cot`` examples re-prompted as ``video_cot_profiles`` with their context's candidates."""
    variant = PromptVariant.VIDEO_COT_PROFILES
    rewritten = []
    for example in examples:
        cluster = task.context_cluster_of.get(example.context_item_id)
        candidates = task.serendipitous_candidates.get(cluster, []) if cluster is not None else []
        listed = candidate_profiles(candidates, task.descriptions, profiles)
        rewritten.append(replace(example, prompt=prompt_text(variant, "", candidate_profiles=listed)))
    return rewritten


def save_cluster_profiles(directory: str | os.PathLike[str], profiles: Mapping[str, str]) -> Path:
    """Write ``cluster_profiles.json`` (cluster id -> profile) into an artifact directory."""
    path = Path(directory) / CLUSTER_PROFILES_FILE
    path.write_text(json.dumps(dict(sorted(profiles.items())), indent=1) + "\n")
    return path


def load_cluster_profiles(directory: str | os.PathLike[str], spec: PlannerSpec) -> dict[str, str]:
    """The profiles of a ``video_cot_profiles`` planner's artifact; empty for every other variant."""
    if not spec.variant.uses_profiles:
        return {}
    path = Path(directory) / CLUSTER_PROFILES_FILE
    if not path.is_file():
        raise ModelArtifactError(f"{directory} is a {spec.variant} planner but has no {CLUSTER_PROFILES_FILE}")
    return dict(json.loads(path.read_text()))
