"""Serendipity curation (paper §2 and §4.1 "Diversified Data Curation") -> SFT examples.

1. Mine (context v_i, next n_j, satisfaction p_ij) pairs: the interaction's ``context_item_id`` when set,
   else the previous item of the same session (``session_id``, or the user's items split by 30-min gaps).
2. Keep serendipitous pairs: different level-``level`` nodes, same level-(``level`` - ``delta``) node.
3. Aggregate p per (v_i, C(n_j)) (mean satisfaction, number of pairs).
4. Split context items into train / held-out (deterministic hash of the item id and seed).
5. Per cluster C and split, keep the ``top_k`` (held-out: ``heldout_top_k``) context items with the highest
   aggregated p (ties: more pairs, then item id) whose video decodes; each kept (v_i, C) is one example
   "context item -> description of C".
   A cluster without any train candidate borrows its best held-out context (moved to train), so every
   cluster description appears in the training data; a cluster with no candidate at all is an error.
6. Emit each example in every prompt variant x frame mode (``prompts.py``), with frame references
   (video path + frame indices from :func:`serendip.core.frames.uniform_frame_indices` over the frames that
   actually decode), never pixel copies.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from serendip.artifacts.curation import Curation
from serendip.core.cluster_tree import DEFAULT_DELTA, DEFAULT_PLANNING_LEVEL, ClusterTree, level_column
from serendip.core.errors import ConfigError, CurationError, VideoDecodeError
from serendip.core.frames import load_image, read_video, select_thumbnail_index, uniform_frame_indices
from serendip.core.prompts import FRAME_COUNTS, NO_FRAMES, THUMBNAIL, VARIANTS, VIDEO_VARIANTS, prompt_text, target_text
from serendip.offline.thoughts import learnable_thoughts

SESSION_GAP = pd.Timedelta(minutes=30)
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class CurationConfig:
    """Parameters of :func:`curate`."""

    level: int = DEFAULT_PLANNING_LEVEL
    delta: int = DEFAULT_DELTA
    top_k: int = 10
    heldout_fraction: float = 0.2
    heldout_top_k: int | None = None
    """Per-cluster examples kept in the held-out split; default ceil(top_k * f / (1 - f)) for held-out
    fraction f, so both splits keep the same share of their contexts (the best-satisfied ones)."""
    min_pairs: int = 1
    """Minimum number of serendipitous pairs behind an aggregated (context, cluster) satisfaction."""
    variants: tuple[str, ...] = VARIANTS
    frame_counts: tuple[int, ...] = FRAME_COUNTS
    include_thumbnail: bool = True
    seed: int = 0
    allow_uncovered: bool = False
    """Warn instead of failing when a cluster has no serendipitous pair at all."""

    @property
    def top_k_per_split(self) -> dict[str, int]:
        """How many context items each split keeps per cluster."""
        heldout = self.heldout_top_k or max(
            1, math.ceil(self.top_k * self.heldout_fraction / (1 - self.heldout_fraction) - 1e-9)
        )
        return {"train": self.top_k, "heldout": heldout}

    def validate(self) -> None:
        """Raise ConfigError naming the first parameter out of range."""
        if not 1 <= self.delta <= self.level:
            raise ConfigError(f"need 1 <= delta <= level, got level={self.level} delta={self.delta}")
        if self.top_k < 1 or self.min_pairs < 1:
            raise ConfigError(f"top_k and min_pairs must be >= 1, got {self.top_k} and {self.min_pairs}")
        if self.heldout_top_k is not None and self.heldout_top_k < 1:
            raise ConfigError(f"heldout_top_k must be >= 1, got {self.heldout_top_k}")
        if not 0 <= self.heldout_fraction < 1:
            raise ConfigError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        unknown = set(self.variants) - set(VARIANTS)
        if unknown or not self.variants:
            raise ConfigError(f"variants must be a non-empty subset of {VARIANTS}, got {self.variants}")
        if any(count < 1 for count in self.frame_counts):
            raise ConfigError(f"frame_counts must be positive, got {self.frame_counts}")


# --- 1-3: pairs ---------------------------------------------------------------------------------------------
def mine_pairs(interactions: pd.DataFrame) -> pd.DataFrame:
    """(context_item_id, next_item_id, satisfaction, user_id, ts) for every interaction that has a context."""
    frame = interactions.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
    if "session_id" in frame and frame["session_id"].notna().any():
        session = frame["user_id"].astype(str) + "/" + frame["session_id"].fillna("").astype(str)
    else:
        new_session = frame["user_id"].ne(frame["user_id"].shift()) | frame["ts"].diff().gt(SESSION_GAP)
        session = new_session.cumsum().astype(str)
    previous = frame.groupby(session, sort=False)["item_id"].shift()
    explicit = frame["context_item_id"] if "context_item_id" in frame else pd.Series(None, index=frame.index)
    context = explicit.where(explicit.notna(), previous)
    pairs = pd.DataFrame(
        {
            "context_item_id": context,
            "next_item_id": frame["item_id"],
            "satisfaction": frame["satisfaction"],
            "user_id": frame["user_id"],
            "ts": frame["ts"],
        }
    )
    return pairs[pairs["context_item_id"].notna()].reset_index(drop=True)


def classify_pairs(pairs: pd.DataFrame, tree: ClusterTree, level: int, delta: int) -> pd.DataFrame:
    """Add context/next clusters at ``level`` and ``relation``: similar, serendipitous, other or unknown_item."""
    nodes = tree.item_nodes_frame().set_index("item_id")
    fine, coarse = nodes[level_column(level)], nodes[level_column(level - delta)] if level > delta else None
    frame = pairs.copy()
    frame["context_cluster"] = frame["context_item_id"].map(fine)
    frame["next_cluster"] = frame["next_item_id"].map(fine)
    if coarse is None:
        same_parent = pd.Series(True, index=frame.index)
    else:
        same_parent = frame["context_item_id"].map(coarse) == frame["next_item_id"].map(coarse)
    known = frame["context_cluster"].notna() & frame["next_cluster"].notna()
    similar = frame["context_cluster"] == frame["next_cluster"]
    frame["relation"] = np.select(
        [~known, similar, same_parent], ["unknown_item", "similar", "serendipitous"], default="other"
    )
    return frame


def aggregate_serendipitous(classified: pd.DataFrame) -> pd.DataFrame:
    """Mean satisfaction and pair count per (context item, next item's cluster) over serendipitous pairs."""
    serendipitous = classified[classified["relation"] == "serendipitous"]
    grouped = serendipitous.groupby(["context_item_id", "next_cluster"])["satisfaction"]
    frame = grouped.agg(satisfaction="mean", pairs="size").reset_index()
    return frame.rename(columns={"next_cluster": "cluster_id"})


def heldout_contexts(context_ids: list[str], fraction: float, seed: int) -> set[str]:
    """Deterministic held-out set: an item is held out when the hash of (seed, item id) falls below ``fraction``."""

    def unit(item_id: str) -> float:
        digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return {item_id for item_id in context_ids if unit(item_id) < fraction}


def rank_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Candidates sorted per cluster, best first: satisfaction desc, pairs desc, context_item_id asc."""
    return candidates.sort_values(
        ["cluster_id", "satisfaction", "pairs", "context_item_id"],
        ascending=[True, False, False, True],
        kind="stable",
        ignore_index=True,
    )


# --- videos -------------------------------------------------------------------------------------------------
@dataclass
class _VideoCheck:
    """Per context item: decodable frame count and thumbnail frame, or why it cannot be used."""

    frame_count: int = 0
    thumbnail_frame: int = 0
    error: str | None = None


class _VideoChecker:
    def __init__(self, items: pd.DataFrame, needs_video: bool, thumbnails_only: bool = False) -> None:
        self.records = items.set_index("item_id")
        self.needs_video = needs_video
        self.thumbnails_only = thumbnails_only
        """No item has a video: a context is usable when its thumbnail image reads (frame count 0)."""
        self.checks: dict[str, _VideoCheck] = {}

    def check(self, item_id: str) -> _VideoCheck:
        if item_id not in self.checks:
            self.checks[item_id] = self._check(item_id)
        return self.checks[item_id]

    def _check(self, item_id: str) -> _VideoCheck:
        if not self.needs_video:
            return _VideoCheck()
        if self.thumbnails_only:
            thumbnail_path = self.records.at[item_id, "thumbnail_path"]
            if not thumbnail_path:
                return _VideoCheck(error="no thumbnail_path (missing file or not given)")
            try:
                load_image(thumbnail_path)
            except VideoDecodeError as error:
                return _VideoCheck(error=str(error))
            return _VideoCheck()
        video_path = self.records.at[item_id, "video_path"]
        if not video_path:
            return _VideoCheck(error="no video_path (missing file or not given)")
        try:
            frames = read_video(video_path)
            thumbnail_path = self.records.at[item_id, "thumbnail_path"]
            if thumbnail_path:
                load_image(thumbnail_path)
        except VideoDecodeError as error:
            return _VideoCheck(error=str(error))
        return _VideoCheck(len(frames), select_thumbnail_index(frames))

    def usable(self, item_id: str) -> bool:
        return self.check(item_id).error is None


# --- 4-5: selection -----------------------------------------------------------------------------------------
def _select(
    ranked: pd.DataFrame, split_of: Mapping[str, str], checker: _VideoChecker, top_k: Mapping[str, int], progress: bool
) -> pd.DataFrame:
    kept = []
    groups = ranked.groupby("cluster_id", sort=True)
    for _, group in tqdm(groups, total=groups.ngroups, desc="selecting top-k", unit="cluster", disable=not progress):
        taken = dict.fromkeys(SPLITS, 0)
        for row in group.itertuples(index=False):
            split = split_of[row.context_item_id]
            if taken[split] < top_k[split] and checker.usable(row.context_item_id):
                taken[split] += 1
                kept.append({**row._asdict(), "split": split, "rank": taken[split]})
    return pd.DataFrame(kept, columns=[*ranked.columns, "split", "rank"])


def _ensure_coverage(
    ranked: pd.DataFrame, split_of: dict[str, str], checker: _VideoChecker, clusters: list[str]
) -> tuple[list[str], list[str]]:
    """Move one held-out context to train for each cluster lacking a usable train candidate.

    Returns (contexts moved, clusters without any usable candidate).
    """
    moved, uncovered = [], []
    by_cluster = {cluster: group for cluster, group in ranked.groupby("cluster_id")}
    for cluster in clusters:
        group = by_cluster.get(cluster)
        contexts = [] if group is None else group["context_item_id"].tolist()
        if any(split_of[context] == "train" and checker.usable(context) for context in contexts):
            continue
        borrowed = next((context for context in contexts if checker.usable(context)), None)
        if borrowed is None:
            uncovered.append(cluster)
        else:
            split_of[borrowed] = "train"
            moved.append(borrowed)
    return moved, uncovered


# --- 6: SFT rows --------------------------------------------------------------------------------------------
def _frame_modes(config: CurationConfig) -> list[str]:
    return [str(count) for count in config.frame_counts] + ([THUMBNAIL] if config.include_thumbnail else [])


def _sft_rows(
    examples: pd.DataFrame, config: CurationConfig, video_variants: tuple[str, ...], thumbnails_only: bool = False
) -> pd.DataFrame:
    frame_modes = [THUMBNAIL] if thumbnails_only else _frame_modes(config)
    rows = []
    for example in examples.itertuples(index=False):
        base = {
            "example_id": example.example_id,
            "split": example.split,
            "context_item_id": example.context_item_id,
            "label_cluster_id": example.label_cluster_id,
            "label_description": example.label_description,
            "title": example.title,
            "video_description": example.video_description,
        }
        for variant in config.variants:
            if variant == "video_cot" and not example.video_description:
                continue
            modes = frame_modes if variant in video_variants else ([NO_FRAMES] if variant == "text_only" else [])
            for mode in modes:
                if mode == NO_FRAMES:
                    indices, image_path = [], None
                elif mode == THUMBNAIL:
                    indices, image_path = [int(example.thumbnail_frame)], example.thumbnail_path
                else:
                    indices, image_path = uniform_frame_indices(int(example.frame_count), int(mode)), None
                rows.append(
                    {
                        **base,
                        "variant": variant,
                        "frames": mode,
                        "prompt": prompt_text(variant, example.title),
                        "target": target_text(variant, example.label_description, example.video_description),
                        "video_path": example.video_path if mode != NO_FRAMES else None,
                        "frame_indices": indices,
                        "image_path": image_path,
                    }
                )
    return pd.DataFrame(rows)


def _tags(records: pd.DataFrame) -> dict[str, list[str]]:
    """item id -> its tags (genres), for items that have any (none without a ``tags`` column)."""
    if "tags" not in records.columns:
        return {}
    return {
        str(item): [str(tag) for tag in value]
        for item, value in records["tags"].items()
        if value is not None and not isinstance(value, float) and len(value)
    }


def curate(
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    tree: ClusterTree,
    config: CurationConfig,
    captions: Mapping[str, str] | None = None,
    truth_good_clusters: Mapping[str, list[str]] | None = None,
    truth_cluster_of: Mapping[str, str] | None = None,
    progress: bool = False,
) -> Curation:
    """Run steps 1-6 of the module docstring on validated items/interactions.

    ``captions`` (item -> what its video shows) feed the chain-of-thought targets; without them the item's
    ``description`` is used, and ``video_cot`` rows are skipped for items that have neither. Texts too long for a
    small model to learn become keyword lines (``serendip.offline.thoughts``).
    ``truth_good_clusters`` (item -> true good clusters) with ``truth_cluster_of`` (built cluster -> true
    cluster) add a label-precision figure to the report (synthetic worlds only).
    """
    config.validate()
    if config.level > tree.num_levels:
        raise ConfigError(f"level {config.level} exceeds the tree's {tree.num_levels} levels")
    has_any_video = bool(items["video_path"].notna().any())
    # A catalogue of images (thumbnails, no video): the video variants see the thumbnail as their one frame.
    thumbnails_only = not has_any_video and config.include_thumbnail and bool(items["thumbnail_path"].notna().any())
    has_visual = has_any_video or thumbnails_only
    video_variants = tuple(variant for variant in config.variants if variant in VIDEO_VARIANTS) if has_visual else ()
    checker = _VideoChecker(items, needs_video=bool(video_variants), thumbnails_only=thumbnails_only)

    classified = classify_pairs(mine_pairs(interactions), tree, config.level, config.delta)
    aggregated = aggregate_serendipitous(classified)
    candidates = rank_candidates(aggregated[aggregated["pairs"] >= config.min_pairs])
    context_ids = sorted(candidates["context_item_id"].unique())
    heldout = heldout_contexts(context_ids, config.heldout_fraction, config.seed)
    split_of = {context: ("heldout" if context in heldout else "train") for context in context_ids}
    clusters = tree.nodes_at(config.level)
    moved, uncovered = _ensure_coverage(candidates, split_of, checker, clusters)
    if uncovered and not config.allow_uncovered:
        unusable = [check.error for check in checker.checks.values() if check.error]
        media = (
            f"; {len(unusable)} of {len(checker.checks)} context items checked had no usable video "
            f"(first: {unusable[0]}); without usable videos curate the text_only variant only (--variants text_only)"
            if unusable
            else ""
        )
        raise CurationError(
            f"{len(uncovered)} level-{config.level} cluster(s) have no usable serendipitous pair, so their "
            f"descriptions cannot appear in the training data: {uncovered[:10]}; add interactions, lower "
            f"min_pairs, or pass allow_uncovered{media}"
        )
    kept = _select(candidates, split_of, checker, config.top_k_per_split, progress)

    records = items.set_index("item_id")
    texts = dict(captions) if captions is not None else records["description"].dropna().to_dict()
    texts = learnable_thoughts(texts, _tags(records))
    kept = kept.rename(columns={"cluster_id": "label_cluster_id"})
    labels_per_context = kept.groupby(["split", "context_item_id"])["label_cluster_id"].agg(sorted)
    examples = kept.assign(
        example_id=kept["context_item_id"] + "->" + kept["label_cluster_id"],
        title=kept["context_item_id"].map(records["title"]),
        context_cluster_id=kept["context_item_id"].map(lambda item: tree.node_of(item, config.level)),
        context_parent_id=kept["context_item_id"].map(lambda item: tree.node_of(item, config.level - config.delta)),
        label_description=kept["label_cluster_id"].map(tree.description),
        context_labels=[labels_per_context[key] for key in zip(kept["split"], kept["context_item_id"], strict=True)],
        video_path=kept["context_item_id"].map(records["video_path"]),
        thumbnail_path=kept["context_item_id"].map(records["thumbnail_path"]),
        frame_count=kept["context_item_id"].map(lambda item: checker.check(item).frame_count),
        thumbnail_frame=kept["context_item_id"].map(lambda item: checker.check(item).thumbnail_frame),
        video_description=kept["context_item_id"].map(lambda item: texts.get(item)),
    )
    sft = _sft_rows(examples, config, video_variants, thumbnails_only)

    candidates = candidates.assign(split=candidates["context_item_id"].map(split_of))
    kept_keys = set(zip(kept["context_item_id"], kept["label_cluster_id"], strict=True))
    candidates["kept"] = [
        key in kept_keys for key in zip(candidates["context_item_id"], candidates["cluster_id"], strict=True)
    ]
    coverage = _cluster_coverage(tree, config.level, candidates, examples)
    errors = pd.DataFrame(
        [(item, check.error) for item, check in sorted(checker.checks.items()) if check.error],
        columns=["item_id", "error"],
    )
    cluster_table = pd.DataFrame(
        {
            "cluster_id": clusters,
            "description": [tree.description(cluster) for cluster in clusters],
            "parent_id": [tree.ancestor(cluster, config.level - config.delta) for cluster in clusters],
        }
    )
    report = _report(classified, aggregated, candidates, examples, sft, coverage, errors, moved, uncovered, config)
    report["video_variants"] = list(video_variants) or "disabled: no item has a video"
    if thumbnails_only:
        report["frame_modes"] = "thumbnail only: no item has a video"
    if truth_good_clusters is not None and truth_cluster_of is not None and len(examples):
        hits = [
            truth_cluster_of.get(cluster) in truth_good_clusters.get(context, [])
            for context, cluster in zip(examples["context_item_id"], examples["label_cluster_id"], strict=True)
        ]
        report["label_precision_vs_truth"] = {
            split: round(
                float(np.mean([hit for hit, s in zip(hits, examples["split"], strict=True) if s == split] or [0])), 4
            )
            for split in SPLITS
        }
    return Curation(examples, sft, candidates, coverage, errors, cluster_table, report)


def _cluster_coverage(tree: ClusterTree, level: int, candidates: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for cluster in tree.nodes_at(level):
        cluster_candidates = candidates[candidates["cluster_id"] == cluster]
        row: dict[str, Any] = {
            "cluster_id": cluster,
            "description": tree.description(cluster),
            "candidate_contexts": int(len(cluster_candidates)),
        }
        for split in SPLITS:
            kept = examples[(examples["label_cluster_id"] == cluster) & (examples["split"] == split)]
            row[f"{split}_kept"] = int(len(kept))
            row[f"{split}_min_satisfaction"] = round(float(kept["satisfaction"].min()), 4) if len(kept) else None
            row[f"{split}_mean_satisfaction"] = round(float(kept["satisfaction"].mean()), 4) if len(kept) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _report(
    classified: pd.DataFrame,
    aggregated: pd.DataFrame,
    candidates: pd.DataFrame,
    examples: pd.DataFrame,
    sft: pd.DataFrame,
    coverage: pd.DataFrame,
    errors: pd.DataFrame,
    moved: list[str],
    uncovered: list[str],
    config: CurationConfig,
) -> dict[str, Any]:
    relations = classified["relation"].value_counts().to_dict()
    return {
        "pairs_seen": int(len(classified)),
        "pairs_similar": int(relations.get("similar", 0)),
        "pairs_serendipitous": int(relations.get("serendipitous", 0)),
        "pairs_other": int(relations.get("other", 0)),
        "pairs_unknown_item": int(relations.get("unknown_item", 0)),
        "serendipitous_context_cluster_groups": int(len(aggregated)),
        "groups_with_min_pairs": int(len(candidates)),
        "candidate_contexts": int(candidates["context_item_id"].nunique()),
        "heldout_contexts": int(candidates.loc[candidates["split"] == "heldout", "context_item_id"].nunique()),
        "contexts_moved_to_train_for_coverage": moved,
        "examples_kept": {split: int((examples["split"] == split).sum()) for split in SPLITS},
        "sft_rows": {split: int((sft["split"] == split).sum()) if len(sft) else 0 for split in SPLITS},
        "clusters": int(len(coverage)),
        "clusters_covered_in_train": int((coverage["train_kept"] > 0).sum()),
        "clusters_with_full_top_k_in_train": int((coverage["train_kept"] >= config.top_k).sum()),
        "uncovered_clusters": uncovered,
        "videos_unusable": {"count": int(len(errors)), "items": errors["item_id"].tolist()[:50]},
        "mean_kept_satisfaction": round(float(examples["satisfaction"].mean()), 4) if len(examples) else None,
    }


def config_to_dict(config: CurationConfig) -> dict[str, Any]:
    """JSON-ready parameters (for manifests)."""
    return asdict(config)
