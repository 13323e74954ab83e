"""Build the 4-level `ClusterTree`: import a taxonomy, or recursive balanced k-means over item embeddings.

k-means path (paper ref [3], items without a taxonomy):

* embedding = [title TF-IDF -> SVD, L2-normalised] ++ [visual features of ``frames_per_item`` uniformly
  sampled frames: 4x4 grid of mean colours and a 64-bin colour histogram], each block centred and scaled to
  unit mean norm, then weighted;
* every node is split into ``branching[level]`` children by k-means whose centroids are traffic-weighted
  (weight ``log(1 + impressions)``) and whose assignment is capacity-constrained: a child may hold at most
  ``(1 + size_tolerance) / k`` of its parent's mass, mass being one per item (``balance_by="items"``, the
  default: with tolerance 0 the sizes at every level are floor or ceil of n / nodes) or the item's impressions
  (``balance_by="traffic"``: equal traffic per cluster, approximate when single items are heavier than a share);
* each node is described by its most distinctive title words (class-based TF-IDF against the other nodes of
  its level), made unique over the whole tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.metrics import normalized_mutual_info_score
from tqdm import tqdm

from serendip.core.cluster_tree import ClusterNode, ClusterTree, level_column, path_node_id
from serendip.core.errors import ConfigError, TreeError, VideoDecodeError
from serendip.core.frames import sample_frames
from serendip.core.parallel import map_tasks

TREE_LEVELS = 4
TOKEN_PATTERN = r"(?u)\b[a-z][a-z]+\b"
TreeMethod = Literal["auto", "taxonomy", "kmeans"]
BalanceMode = Literal["items", "traffic"]
METHODS: tuple[str, ...] = get_args(TreeMethod)
BALANCE_MODES: tuple[str, ...] = get_args(BalanceMode)
BALANCED_CANDIDATES = 3


@dataclass(frozen=True)
class TreeBuildConfig:
    """Parameters of :func:`build_tree`."""

    method: TreeMethod = "auto"
    """"taxonomy" imports the items' taxonomy column, "kmeans" clusters embeddings, "auto" picks taxonomy
    when every item has one."""
    branching: tuple[int, int, int, int] = (3, 3, 4, 2)
    balance_by: BalanceMode = "items"
    size_tolerance: float = 0.0
    text_weight: float = 1.0
    visual_weight: float = 1.0
    text_dims: int = 64
    frames_per_item: int = 4
    iterations: int = 25
    restarts: int = 8
    description_words: int = 2
    seed: int = 0
    workers: int = 2

    def validate(self) -> None:
        """Raise ConfigError naming the first parameter out of range."""
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.balance_by not in BALANCE_MODES:
            raise ConfigError(f"balance_by must be one of {BALANCE_MODES}, got {self.balance_by!r}")
        if len(self.branching) != TREE_LEVELS or min(self.branching) < 1:
            raise ConfigError(f"branching must be {TREE_LEVELS} positive ints, got {self.branching}")
        if self.size_tolerance < 0:
            raise ConfigError(f"size_tolerance must be >= 0, got {self.size_tolerance}")
        if self.text_weight < 0 or self.visual_weight < 0 or self.text_weight + self.visual_weight == 0:
            raise ConfigError("text_weight and visual_weight must be >= 0 and not both 0")


@dataclass
class ItemEmbeddings:
    """Per-item embedding rows (aligned with ``item_ids``) and the items whose video could not be used."""

    item_ids: list[str]
    vectors: np.ndarray
    video_errors: dict[str, str] = field(default_factory=dict)
    items_without_video: int = 0


# --- features -----------------------------------------------------------------------------------------------
VISUAL_PARTS = {"histogram": 2.0, "grid2": 1.0, "grid4": 1.0}
"""Visual feature parts and their weights (times ``visual_weight``): a position-free 64-bin colour histogram
(which colours, how much), and mean colours on 2x2 and 4x4 grids (where)."""


def frame_visual_features(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Visual features of a set of frames (averaged over them), keyed as in ``VISUAL_PARTS``."""
    count, height, width, _ = frames.shape
    frames = frames[:, : height - height % 4, : width - width % 4]
    height, width = frames.shape[1:3]
    quantised = frames.astype(np.int32) >> 6
    codes = (quantised[..., 0] * 16 + quantised[..., 1] * 4 + quantised[..., 2]).reshape(-1)
    return {
        "histogram": np.bincount(codes, minlength=64) / codes.size,
        "grid2": frames.reshape(count, 2, height // 2, 2, width // 2, 3).mean(axis=(0, 2, 4)).reshape(-1) / 255,
        "grid4": frames.reshape(count, 4, height // 4, 4, width // 4, 3).mean(axis=(0, 2, 4)).reshape(-1) / 255,
    }


def _video_features(task: tuple[str, int]) -> tuple[dict[str, np.ndarray] | None, str | None]:
    path, frames_per_item = task
    try:
        return frame_visual_features(sample_frames(path, frames_per_item).frames), None
    except VideoDecodeError as error:
        return None, str(error)


def _scaled_block(block: np.ndarray, present: np.ndarray, weight: float) -> np.ndarray:
    """Centre on the rows that have the feature, leave absent rows at the mean (zero), unit mean norm."""
    scaled = np.zeros_like(block, dtype=np.float64)
    if present.any():
        centred = block[present] - block[present].mean(axis=0)
        norm = np.linalg.norm(centred, axis=1).mean()
        scaled[present] = centred / norm * weight if norm > 0 else 0
    return scaled


def item_embeddings(items: pd.DataFrame, config: TreeBuildConfig, progress: bool = False) -> ItemEmbeddings:
    """Title-text plus visual embedding of every item (see the module docstring)."""
    texts = (items["title"].fillna("") + " " + items["description"].fillna("")).str.lower().tolist()
    text_block = np.zeros((len(items), 1))
    has_text = np.zeros(len(items), dtype=bool)
    if config.text_weight > 0:
        vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, token_pattern=TOKEN_PATTERN)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # no token at all in any title
            tfidf = None
        if tfidf is not None:
            dims = min(config.text_dims, tfidf.shape[1] - 1, len(items) - 1)
            dense = TruncatedSVD(dims, random_state=config.seed).fit_transform(tfidf) if dims >= 2 else tfidf.toarray()
            norms = np.linalg.norm(dense, axis=1, keepdims=True)
            has_text = norms[:, 0] > 1e-9
            text_block = np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 1e-9)
    video_paths = items["video_path"].tolist()
    with_video = [index for index, path in enumerate(video_paths) if path]
    visual_blocks = {
        part: np.zeros((len(items), size)) for part, size in (("histogram", 64), ("grid2", 12), ("grid4", 48))
    }
    has_visual = np.zeros(len(items), dtype=bool)
    errors: dict[str, str] = {}
    if config.visual_weight > 0 and with_video:
        tasks = [(video_paths[index], config.frames_per_item) for index in with_video]
        results = map_tasks(_video_features, tasks, config.workers, "visual features", progress)
        for index, (features, error) in zip(with_video, results, strict=True):
            if features is None:
                errors[str(items["item_id"].iat[index])] = str(error)
                continue
            has_visual[index] = True
            for part, values in features.items():
                visual_blocks[part][index] = values
    blocks = [_scaled_block(text_block, has_text, config.text_weight)] + [
        _scaled_block(visual_blocks[part], has_visual, config.visual_weight * weight)
        for part, weight in VISUAL_PARTS.items()
    ]
    vectors = np.hstack(blocks)
    return ItemEmbeddings(items["item_id"].astype(str).tolist(), vectors, errors, len(items) - len(with_video))


# --- balanced k-means ---------------------------------------------------------------------------------------
def _balanced_assign(distances: np.ndarray, mass: np.ndarray, capacity: float, min_members: int) -> np.ndarray:
    """Greedy capacity-constrained assignment: heaviest items first, then most constrained (largest regret).

    Afterwards every cluster is topped up to ``min_members`` items (the leaves it must still fill) with the
    nearest items of the most populous cluster.
    """
    count, clusters = distances.shape
    preference = np.argsort(distances, axis=1)
    ordered = np.sort(distances, axis=1)
    regret = ordered[:, 1] - ordered[:, 0] if clusters > 1 else np.zeros(count)
    load = np.zeros(clusters)
    labels = np.empty(count, dtype=np.int64)
    for item in np.lexsort((-regret, -mass)):
        for cluster in preference[item]:
            if load[cluster] + mass[item] <= capacity + 1e-9:
                break
        else:
            cluster = int(np.argmin(load))
        labels[item] = cluster
        load[cluster] += mass[item]
    for cluster in range(clusters):
        while (labels == cluster).sum() < min_members:
            donor = np.bincount(labels, minlength=clusters).argmax()
            members = np.flatnonzero(labels == donor)
            labels[members[np.argmin(distances[members, cluster])]] = cluster
    return labels


def _squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.maximum((points**2).sum(1)[:, None] - 2 * points @ centroids.T + (centroids**2).sum(1)[None, :], 0.0)


def _kmeans_plus_plus(points: np.ndarray, clusters: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centroids = [points[rng.choice(len(points), p=weights / weights.sum())]]
    for _ in range(clusters - 1):
        nearest = _squared_distances(points, np.array(centroids)).min(axis=1) * weights
        probabilities = nearest / nearest.sum() if nearest.sum() > 0 else weights / weights.sum()
        centroids.append(points[rng.choice(len(points), p=probabilities)])
    return np.array(centroids)


def _weighted_centroids(
    points: np.ndarray, labels: np.ndarray, weights: np.ndarray, previous: np.ndarray
) -> np.ndarray:
    centroids = previous.copy()
    for cluster in range(len(previous)):
        members = labels == cluster
        if members.any():
            centroids[cluster] = np.average(points[members], axis=0, weights=weights[members])
    return centroids


def balanced_kmeans(
    points: np.ndarray,
    clusters: int,
    *,
    mass: np.ndarray | None = None,
    centroid_weights: np.ndarray | None = None,
    size_tolerance: float = 0.0,
    min_members: int = 1,
    iterations: int = 25,
    restarts: int = 8,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Split ``points`` into ``clusters`` groups whose total ``mass`` is at most ``(1 + tol) * total / k``.

    ``restarts`` weighted k-means++/Lloyd runs propose starting centroids; from the ``BALANCED_CANDIDATES``
    best of them, capacity-constrained assignment and ``centroid_weights``-weighted centroid updates alternate
    until the labels stop changing, and the lowest weighted inertia wins. Returns labels 0..k-1, each used by
    at least ``min_members`` points.
    """
    count = len(points)
    if clusters < 1 or count < clusters * min_members:
        raise TreeError(f"cannot split {count} items into {clusters} clusters of at least {min_members}")
    rng = rng or np.random.default_rng(0)
    mass = np.ones(count) if mass is None else np.asarray(mass, dtype=np.float64)
    weights = np.ones(count) if centroid_weights is None else np.asarray(centroid_weights, dtype=np.float64)
    if clusters == 1:
        return np.zeros(count, dtype=np.int64)
    starts = []
    for _ in range(restarts):
        centroids = _kmeans_plus_plus(points, clusters, weights, rng)
        for _ in range(iterations):
            labels = _squared_distances(points, centroids).argmin(axis=1)
            updated = _weighted_centroids(points, labels, weights, centroids)
            if np.allclose(updated, centroids):
                break
            centroids = updated
        starts.append((float((_squared_distances(points, centroids).min(axis=1) * weights).sum()), centroids))
    starts.sort(key=lambda start: start[0])
    capacity = mass.sum() / clusters * (1 + size_tolerance)
    best_labels, best_inertia = np.zeros(count, dtype=np.int64), np.inf
    for _, centroids in starts[:BALANCED_CANDIDATES]:
        labels = np.full(count, -1)
        for _ in range(iterations):
            new_labels = _balanced_assign(_squared_distances(points, centroids), mass, capacity, min_members)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            centroids = _weighted_centroids(points, labels, weights, centroids)
        inertia = float((_squared_distances(points, centroids)[np.arange(count), labels] * weights).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


# --- descriptions -------------------------------------------------------------------------------------------
def distinctive_words(titles_by_node: dict[str, list[str]], top: int = 8) -> dict[str, list[str]]:
    """Per node, its title words ranked by class-based TF-IDF against the other nodes given.

    ``tf`` is the fraction of the node's titles containing the word; the score is
    ``tf * log(1 + nodes / sum of tf over nodes)``, so a word frequent here and rare elsewhere ranks first.
    """
    node_ids = list(titles_by_node)
    documents = [title.lower() for node_id in node_ids for title in titles_by_node[node_id]]
    owners = np.repeat(np.arange(len(node_ids)), [len(titles_by_node[node_id]) for node_id in node_ids])
    vectorizer = CountVectorizer(stop_words="english", token_pattern=TOKEN_PATTERN, binary=True)
    try:
        presence = vectorizer.fit_transform(documents)
    except ValueError:
        return {node_id: [] for node_id in node_ids}
    vocabulary = vectorizer.get_feature_names_out()
    membership = np.zeros((len(node_ids), len(documents)))
    membership[owners, np.arange(len(documents))] = 1
    sizes = np.maximum(membership.sum(axis=1, keepdims=True), 1)
    term_frequency = np.asarray(membership @ presence) / sizes
    scores = term_frequency * np.log1p(len(node_ids) / np.maximum(term_frequency.sum(axis=0), 1e-9))
    ranked = {}
    for row, node_id in enumerate(node_ids):
        order = np.argsort(-scores[row], kind="stable")[:top]
        ranked[node_id] = [str(vocabulary[index]) for index in order if term_frequency[row, index] > 0]
    return ranked


def _unique_descriptions(candidates: dict[str, list[str]], words: int, taken: set[str]) -> dict[str, str]:
    descriptions = {}
    for node_id, ranked in candidates.items():
        description = ""
        for length in range(words, max(words, len(ranked)) + 1):
            description = " ".join(ranked[:length]) or f"cluster {node_id}"
            if description not in taken:
                break
        if description in taken:
            description = f"{description} {node_id}"
        taken.add(description)
        descriptions[node_id] = description
    return descriptions


# --- building -----------------------------------------------------------------------------------------------
def build_kmeans_tree(
    items: pd.DataFrame, config: TreeBuildConfig, embeddings: ItemEmbeddings, progress: bool = False
) -> ClusterTree:
    """Recursive balanced k-means over ``embeddings`` (see the module docstring)."""
    total_leaves = int(np.prod(config.branching))
    if len(items) < total_leaves:
        raise TreeError(f"{len(items)} items cannot fill {total_leaves} leaves of branching {config.branching}")
    rng = np.random.default_rng(config.seed)
    impressions = items["impressions"].to_numpy(dtype=np.float64)
    mass = np.ones(len(items)) if config.balance_by == "items" else np.maximum(impressions, 1)
    weights = np.log1p(np.maximum(impressions, 0)) + 1e-6
    titles = items["title"].fillna("").tolist()
    frontier: list[tuple[tuple[int, ...], np.ndarray]] = [((), np.arange(len(items)))]
    nodes: list[tuple[tuple[int, ...], np.ndarray]] = []
    splits = sum(int(np.prod(config.branching[:depth])) for depth in range(TREE_LEVELS))
    with tqdm(total=splits, desc="k-means splits", unit="node", disable=not progress) as bar:
        for depth, width in enumerate(config.branching):
            leaves_below = int(np.prod(config.branching[depth + 1 :]))
            next_frontier = []
            for path, members in frontier:
                labels = balanced_kmeans(
                    embeddings.vectors[members],
                    width,
                    mass=mass[members],
                    centroid_weights=weights[members],
                    size_tolerance=config.size_tolerance,
                    min_members=leaves_below,
                    iterations=config.iterations,
                    restarts=config.restarts,
                    rng=rng,
                )
                next_frontier += [(path + (child,), members[labels == child]) for child in range(width)]
                bar.update()
            nodes += next_frontier
            frontier = next_frontier
    taken: set[str] = set()
    tree_nodes = []
    for level in range(1, TREE_LEVELS + 1):
        level_nodes = {path_node_id(path): members for path, members in nodes if len(path) == level}
        ranked = distinctive_words({node_id: [titles[m] for m in members] for node_id, members in level_nodes.items()})
        descriptions = _unique_descriptions(ranked, config.description_words, taken)
        tree_nodes += [
            ClusterNode(node_id, level, node_id.rsplit(".", 1)[0] if level > 1 else None, descriptions[node_id])
            for node_id in level_nodes
        ]
    leaves = {
        str(items["item_id"].iat[member]): path_node_id(path)
        for path, members in nodes
        if len(path) == TREE_LEVELS
        for member in members
    }
    return ClusterTree(tree_nodes, leaves, TREE_LEVELS)


def import_taxonomy(items: pd.DataFrame) -> ClusterTree:
    """The items' ``taxonomy`` column (4 labels, broad to fine) as a tree; labels become descriptions.

    A label used by several nodes is disambiguated with its parent's label ("other (cooking)"), then, if
    still ambiguous, with the node id.
    """
    missing = items["taxonomy"].isna().sum() if "taxonomy" in items else len(items)
    if missing:
        raise TreeError(f"{missing} of {len(items)} items have no taxonomy; use method='kmeans'")
    label_paths = [tuple(labels) for labels in items["taxonomy"]]
    index_paths: dict[tuple[str, ...], tuple[int, ...]] = {(): ()}
    for level in range(1, TREE_LEVELS + 1):
        children_seen: dict[tuple[str, ...], int] = {}
        for prefix in sorted({path[:level] for path in label_paths}):
            index = children_seen.get(prefix[:-1], 0)
            children_seen[prefix[:-1]] = index + 1
            index_paths[prefix] = index_paths[prefix[:-1]] + (index,)
    ids = {prefix: path_node_id(path) for prefix, path in index_paths.items() if prefix}
    labels_of = {node_id: prefix[-1].strip() for prefix, node_id in ids.items()}
    counts = pd.Series(list(labels_of.values())).value_counts()
    descriptions: dict[str, str] = {}
    for prefix, node_id in ids.items():
        label = labels_of[node_id]
        if counts[label] > 1 and len(prefix) > 1:
            label = f"{label} ({prefix[-2].strip()})"
        descriptions[node_id] = label
    repeated = pd.Series(list(descriptions.values())).value_counts()
    for node_id, description in descriptions.items():
        if repeated[description] > 1:
            descriptions[node_id] = f"{description} [{node_id}]"
    nodes = [
        ClusterNode(node_id, len(prefix), ids[prefix[:-1]] if len(prefix) > 1 else None, descriptions[node_id])
        for prefix, node_id in ids.items()
    ]
    leaves = {str(item_id): ids[path] for item_id, path in zip(items["item_id"], label_paths, strict=True)}
    return ClusterTree(nodes, leaves, TREE_LEVELS)


@dataclass
class TreeBuild:
    """A built tree with how it was built and the embedding problems met on the way."""

    tree: ClusterTree
    method: str
    video_errors: dict[str, str] = field(default_factory=dict)
    items_without_video: int = 0


def build_tree(items: pd.DataFrame, config: TreeBuildConfig, progress: bool = False) -> TreeBuild:
    """Build the cluster tree of validated ``items`` (see :class:`TreeBuildConfig` for the method)."""
    config.validate()
    has_taxonomy = "taxonomy" in items and items["taxonomy"].notna().all() and len(items) > 0
    method = ("taxonomy" if has_taxonomy else "kmeans") if config.method == "auto" else config.method
    if method == "taxonomy":
        return TreeBuild(import_taxonomy(items), method)
    embeddings = item_embeddings(items, config, progress)
    tree = build_kmeans_tree(items, config, embeddings, progress)
    return TreeBuild(tree, method, embeddings.video_errors, embeddings.items_without_video)


# --- report -------------------------------------------------------------------------------------------------
def purity(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Fraction of items whose predicted cluster's majority true label is their own true label."""
    table = pd.crosstab(pd.Series(predicted, name="predicted"), pd.Series(truth, name="truth"))
    return float(table.max(axis=1).sum() / table.to_numpy().sum())


def majority_match(tree: ClusterTree, truth: pd.DataFrame, level: int) -> dict[str, str]:
    """Built node at ``level`` -> the true node most of its items belong to (``truth``: item_id, level_<l>)."""
    frame = tree.item_nodes_frame().merge(truth[["item_id", level_column(level)]], on="item_id", suffixes=("", "_true"))
    column = level_column(level)
    counts = frame.groupby([column, f"{column}_true"]).size().reset_index(name="items")
    best = counts.sort_values(["items", f"{column}_true"], ascending=[False, True]).drop_duplicates(column)
    return dict(zip(best[column], best[f"{column}_true"], strict=True))


def tree_report(tree: ClusterTree, items: pd.DataFrame, truth: pd.DataFrame | None = None) -> dict[str, Any]:
    """Sizes per level, item-count and traffic balance (max/min), and NMI/purity against ``truth`` if given."""
    frame = tree.item_nodes_frame().merge(items[["item_id", "impressions"]], on="item_id")
    levels: dict[str, Any] = {}
    for level in range(1, tree.num_levels + 1):
        column = level_column(level)
        sizes = frame.groupby(column).size()
        traffic = frame.groupby(column)["impressions"].sum()
        entry: dict[str, Any] = {
            "nodes": int(len(sizes)),
            "items_min": int(sizes.min()),
            "items_max": int(sizes.max()),
            "items_mean": round(float(sizes.mean()), 2),
            "size_balance_max_over_min": round(float(sizes.max() / sizes.min()), 4),
            "traffic_balance_max_over_min": round(float(traffic.max() / max(traffic.min(), 1)), 4),
        }
        if truth is not None and column in truth:
            joined = frame[["item_id", column]].merge(truth[["item_id", column]], on="item_id", suffixes=("", "_true"))
            entry["nmi"] = round(float(normalized_mutual_info_score(joined[f"{column}_true"], joined[column])), 4)
            entry["purity"] = round(purity(joined[column].tolist(), joined[f"{column}_true"].tolist()), 4)
        levels[str(level)] = entry
    return {"items": int(len(frame)), "levels": levels}
