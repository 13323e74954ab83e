"""Build the 4-level `ClusterTree`: import a taxonomy, or recursive balanced k-means over item embeddings.

k-means path (paper ref [3], items without a taxonomy):

* embedding = up to three blocks, each centred and scaled to unit mean norm, then weighted:
  - *collaborative*: PMI + SVD of the training users' consecutive positive pairs
    (:mod:`serendip.offline.coengagement`); an item in ``n`` pairs keeps ``n / (n + 3)`` of its own vector and
    takes the rest from its 10 nearest warm items in content space, so items without interactions are placed
    by content alone;
  - *text*: TF-IDF of title + description words (stop words out) beside TF-IDF of whole tags (times
    ``tag_weight``), SVD, L2-normalised;
  - *visual*: ``frames_per_item`` uniformly sampled frames: a 64-bin colour histogram and 2x2 / 4x4 grids of
    mean colours;
* block weights left ``None`` are chosen by validation (:func:`select_weights`): the pairs of held-out users
  (``validation_fraction``) score each setting of :data:`WEIGHT_GRID` by the co-engagement lift of its tree at
  ``selection_level``; another set of users (``test_fraction``) is kept for the report's lift. Without
  interactions the weights are text 1, visual 1;
* every node is split into ``branching[level]`` children by k-means whose centroids are traffic-weighted
  (weight ``log(1 + impressions)``) and whose assignment is capacity-constrained: a child may hold at most
  ``(1 + size_tolerance) / k`` of its parent's mass, mass being one per item (``balance_by="items"``, the
  default: with tolerance 0 the sizes at every level are floor or ceil of n / nodes) or the item's impressions
  (``balance_by="traffic"``: equal traffic per cluster, approximate when single items are heavier than a share);
* each node is described by its most distinctive terms -- whole tags first, then title/description words --
  by class-based TF-IDF against the other nodes of its level, extended until unique over the whole tree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.metrics import normalized_mutual_info_score
from tqdm import tqdm

from serendip.core.cluster_tree import ClusterNode, ClusterTree, level_column, path_node_id
from serendip.core.errors import ConfigError, TreeError, VideoDecodeError
from serendip.core.frames import frame_visual_features, sample_frames
from serendip.core.parallel import map_tasks
from serendip.offline.coengagement import (
    POSITIVE_SATISFACTION,
    coengagement_lift,
    pmi_svd_vectors,
    positive_pairs,
    split_pairs_by_user,
)

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
    collaborative_weight: float | None = None
    """Weight of the co-engagement (PMI + SVD) block; None: chosen by validation (see :func:`select_weights`)."""
    text_weight: float | None = None
    """Weight of the text block (title, description, tags); None: chosen by validation."""
    visual_weight: float | None = None
    """Weight of the visual block (decoded frames); None: chosen by validation."""
    text_dims: int = 64
    collaborative_dims: int = 32
    tag_weight: float = 3.0
    """A tag counts this many times a title or description word (text block and descriptions)."""
    positive_satisfaction: float = POSITIVE_SATISFACTION
    validation_fraction: float = 0.1
    """Users whose positive pairs choose the block weights."""
    test_fraction: float = 0.1
    """Users whose positive pairs measure the reported co-engagement lift (never used to build)."""
    selection_level: int = 3
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
        weights = self.fixed_weights()
        if any(weight < 0 for weight in weights.values()):
            raise ConfigError(f"block weights must be >= 0, got {weights}")
        if len(weights) == len(BLOCKS) and sum(weights.values()) == 0:
            raise ConfigError("collaborative_weight, text_weight and visual_weight must not all be 0")
        if not 0 <= self.validation_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ConfigError("validation_fraction and test_fraction must be in [0, 1)")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError("validation_fraction + test_fraction must leave users to train on")
        if not 1 <= self.selection_level <= TREE_LEVELS:
            raise ConfigError(f"selection_level must be in 1..{TREE_LEVELS}, got {self.selection_level}")

    def fixed_weights(self) -> dict[str, float]:
        """The block weights given (not left to validation)."""
        given = {"collaborative": self.collaborative_weight, "text": self.text_weight, "visual": self.visual_weight}
        return {block: weight for block, weight in given.items() if weight is not None}


BLOCKS = ("collaborative", "text", "visual")
DEFAULT_WEIGHTS = {"collaborative": 0.0, "text": 1.0, "visual": 1.0}
"""Weights used where nothing can be validated (no interactions): content only, as before co-engagement."""
WEIGHT_GRID = (0.0, 0.5, 1.0)
"""Values tried for each free block weight (proportional settings tried once)."""
SELECTION_RESTARTS, SELECTION_ITERATIONS = 3, 15
COLD_START_NEIGHBOURS = 10
NEIGHBOUR_CHUNK = 512
EXACT_NEIGHBOUR_PAIRS = 1_000_000_000
"""Largest items x warm items whose content neighbours are found exactly (about 30k x 30k; seconds)."""
HNSW_LINKS = 32
HNSW_SEARCH_DEPTH = 64
COLD_START_SHRINKAGE = 3.0
"""An item in n training pairs gets ``n / (n + 3)`` of its own PMI vector, the rest from its content neighbours."""


@dataclass
class ItemEmbeddings:
    """Per-item embedding blocks (rows aligned with ``item_ids``), each centred and scaled to unit mean norm.

    ``blocks`` holds the blocks present (``collaborative`` only when interactions were given); items lacking
    a block's source sit at its mean (zero). ``vectors(weights)`` concatenates the weighted blocks.
    """

    item_ids: list[str]
    blocks: dict[str, np.ndarray]
    video_errors: dict[str, str] = field(default_factory=dict)
    items_without_video: int = 0
    items_without_interactions: int = 0

    def vectors(self, weights: dict[str, float]) -> np.ndarray:
        """``[w_b * block_b]`` over the blocks present with a positive weight."""
        parts = [
            self.blocks[name] * weights[name] for name in BLOCKS if name in self.blocks and weights.get(name, 0.0) > 0
        ]
        return np.hstack(parts) if parts else np.zeros((len(self.item_ids), 1))


# --- features -----------------------------------------------------------------------------------------------
VISUAL_PARTS = {"histogram": 2.0, "grid2": 1.0, "grid4": 1.0}
"""Visual feature parts and their weights (times ``visual_weight``): a position-free 64-bin colour histogram
(which colours, how much), and mean colours on 2x2 and 4x4 grids (where)."""


def _video_features(task: tuple[str, int]) -> tuple[dict[str, np.ndarray] | None, str | None]:
    path, frames_per_item = task
    try:
        return frame_visual_features(sample_frames(path, frames_per_item).frames), None
    except VideoDecodeError as error:
        return None, str(error)


def _scaled_block(block: np.ndarray, present: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Centre on the rows that have the feature, leave absent rows at the mean (zero), unit mean norm."""
    scaled = np.zeros_like(block, dtype=np.float64)
    if present.any():
        centred = block[present] - block[present].mean(axis=0)
        norm = np.linalg.norm(centred, axis=1).mean()
        scaled[present] = centred / norm * weight if norm > 0 else 0
    return scaled


def item_tags(items: pd.DataFrame) -> list[list[str]]:
    """Each item's tags, lower-cased (empty lists where the items have no ``tags`` column)."""
    if "tags" not in items:
        return [[] for _ in range(len(items))]
    lists = [value if isinstance(value, list | tuple | np.ndarray) else [] for value in items["tags"]]
    return [[str(tag).strip().lower() for tag in value if str(tag).strip()] for value in lists]


def item_texts(items: pd.DataFrame) -> list[str]:
    """Title and description of each item, lower-cased."""
    description = items["description"].fillna("") if "description" in items else ""
    return (items["title"].fillna("") + " " + description).str.lower().tolist()


def text_block(items: pd.DataFrame, dims: int, tag_weight: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(L2-normalised SVD of [word TF-IDF, tag_weight * tag TF-IDF], which rows have any text)."""
    matrices = []
    words = TfidfVectorizer(stop_words="english", sublinear_tf=True, token_pattern=TOKEN_PATTERN)
    try:
        matrices.append(words.fit_transform(item_texts(items)))
    except ValueError:  # no token at all in any title or description
        pass
    tags = item_tags(items)
    if any(tags):
        tag_vectorizer = TfidfVectorizer(analyzer=lambda tag_list: tag_list, sublinear_tf=True)
        matrices.append(tag_vectorizer.fit_transform(tags) * tag_weight)
    if not matrices:
        return np.zeros((len(items), 1)), np.zeros(len(items), dtype=bool)
    tfidf = sparse.hstack(matrices).tocsr()
    dims = min(dims, tfidf.shape[1] - 1, len(items) - 1)
    dense = TruncatedSVD(dims, random_state=seed).fit_transform(tfidf) if dims >= 2 else tfidf.toarray()
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 1e-9), norms[:, 0] > 1e-9


def visual_block(
    items: pd.DataFrame, config: TreeBuildConfig, progress: bool
) -> tuple[np.ndarray | None, dict[str, str], int]:
    """(scaled visual parts side by side or None when no video decodes, decode errors, items without video)."""
    video_paths = items["video_path"].tolist()
    with_video = [index for index, path in enumerate(video_paths) if path]
    parts = {part: np.zeros((len(items), size)) for part, size in (("histogram", 64), ("grid2", 12), ("grid4", 48))}
    has_visual = np.zeros(len(items), dtype=bool)
    errors: dict[str, str] = {}
    if with_video:
        tasks = [(video_paths[index], config.frames_per_item) for index in with_video]
        results = map_tasks(_video_features, tasks, config.workers, "visual features", progress)
        for index, (features, error) in zip(with_video, results, strict=True):
            if features is None:
                errors[str(items["item_id"].iat[index])] = str(error)
                continue
            has_visual[index] = True
            for part, values in features.items():
                parts[part][index] = values
    without_video = len(items) - len(with_video)
    if not has_visual.any():
        return None, errors, without_video
    block = np.hstack([_scaled_block(parts[part], has_visual, weight) for part, weight in VISUAL_PARTS.items()])
    return block, errors, without_video


def collaborative_block(
    pairs: pd.DataFrame, item_ids: list[str], content: np.ndarray, config: TreeBuildConfig
) -> tuple[np.ndarray, int]:
    """(PMI + SVD vectors of the training pairs, shrunk toward content neighbours; items in no pair).

    An item in ``n`` pairs gets ``n / (n + COLD_START_SHRINKAGE)`` of its own vector plus the rest of the mean
    vector of its ``COLD_START_NEIGHBOURS`` nearest warm items in ``content`` space, so items without
    interactions are placed by content alone and items with few are not placed by noise.
    """
    collaborative = pmi_svd_vectors(pairs, item_ids, config.collaborative_dims, seed=config.seed)
    counts = collaborative.pair_counts
    warm = np.flatnonzero(counts > 0)
    vectors = collaborative.vectors
    if len(warm) == 0:
        return np.zeros((len(item_ids), 1)), len(item_ids)
    norms = np.linalg.norm(content, axis=1, keepdims=True)
    unit = np.divide(content, norms, out=np.zeros_like(content), where=norms > 1e-12).astype(np.float32)
    nearest = _warm_neighbours(unit, warm, min(COLD_START_NEIGHBOURS, len(warm)))
    warm_vectors = vectors[warm]
    from_content = np.empty_like(vectors)
    for start in range(0, len(item_ids), NEIGHBOUR_CHUNK):  # chunks bound the [items, neighbours, dims] gather
        rows = slice(start, start + NEIGHBOUR_CHUNK)
        from_content[rows] = warm_vectors[nearest[rows]].mean(axis=1)
    own = (counts / (counts + COLD_START_SHRINKAGE))[:, None]
    blended = own * vectors + (1 - own) * from_content
    return _scaled_block(blended, np.ones(len(item_ids), dtype=bool)), int((counts == 0).sum())


def _warm_neighbours(unit: np.ndarray, warm: np.ndarray, neighbours: int) -> np.ndarray:
    """[items, neighbours] positions in ``warm`` of each item's most cosine-similar warm items (never itself).

    Exact while items x warm items stays under EXACT_NEIGHBOUR_PAIRS; above that (catalogues of 10^5 items and
    more, where the exact search grows with items squared) a FAISS HNSW graph over the warm items answers in
    about items x log(warm items), approximately (more than ``neighbours`` are asked for, so losing the item
    itself never leaves a row short).
    """
    warm_position = np.full(len(unit), -1)
    warm_position[warm] = np.arange(len(warm))
    if len(unit) * len(warm) <= EXACT_NEIGHBOUR_PAIRS:
        nearest = np.empty((len(unit), neighbours), dtype=np.int64)
        warm_unit = unit[warm]
        for start in range(0, len(unit), NEIGHBOUR_CHUNK):  # chunks bound the similarity matrix's memory
            rows = np.arange(start, min(start + NEIGHBOUR_CHUNK, len(unit)))
            similarity = unit[rows] @ warm_unit.T
            own_column = warm_position[rows]
            similarity[np.flatnonzero(own_column >= 0), own_column[own_column >= 0]] = -np.inf
            nearest[rows] = np.argpartition(-similarity, neighbours - 1, axis=1)[:, :neighbours]
        return nearest
    import faiss  # seconds to import: only where a catalogue is this big

    index = faiss.IndexHNSWFlat(unit.shape[1], HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = HNSW_SEARCH_DEPTH
    index.add(np.ascontiguousarray(unit[warm]))
    _, found = index.search(np.ascontiguousarray(unit), neighbours + 1)
    found[found == warm_position[:, None]] = -1  # never its own neighbour
    # Each row's first ``neighbours`` hits that are neither the item itself nor missing (-1, sorted to the end);
    # a row the graph answered short repeats its best hit.
    order = np.argsort(found < 0, axis=1, kind="stable")[:, :neighbours]
    nearest = np.take_along_axis(found, order, axis=1)
    return np.where(nearest >= 0, nearest, nearest[:, :1])


def item_embeddings(
    items: pd.DataFrame,
    config: TreeBuildConfig,
    progress: bool = False,
    train_pairs: pd.DataFrame | None = None,
) -> ItemEmbeddings:
    """Text, visual and (given ``train_pairs``) collaborative blocks of every item (see the module docstring)."""
    item_ids = items["item_id"].astype(str).tolist()
    blocks: dict[str, np.ndarray] = {}
    text, has_text = text_block(items, config.text_dims, config.tag_weight, config.seed)
    if has_text.any():
        blocks["text"] = _scaled_block(text, has_text)
    visual, errors, without_video = (None, {}, 0)
    if config.visual_weight != 0:
        visual, errors, without_video = visual_block(items, config, progress)
    if visual is not None:
        blocks["visual"] = visual
    without_interactions = 0
    if train_pairs is not None and len(train_pairs) and config.collaborative_weight != 0:
        content = ItemEmbeddings(item_ids, blocks).vectors(DEFAULT_WEIGHTS)
        blocks["collaborative"], without_interactions = collaborative_block(train_pairs, item_ids, content, config)
    return ItemEmbeddings(item_ids, blocks, errors, without_video, without_interactions)


def candidate_weights(config: TreeBuildConfig, present: Sequence[str]) -> list[dict[str, float]]:
    """Weight settings to validate: every ``WEIGHT_GRID`` value for each free block present (given weights kept).

    Absent blocks get 0; when every weight is free, settings proportional to one another are tried once (the
    largest weight is 1).
    """
    fixed = config.fixed_weights()
    free = [block for block in BLOCKS if block not in fixed and block in present]
    candidates, seen = [], set()
    for values in itertools.product(WEIGHT_GRID, repeat=len(free)):
        weights = {block: 0.0 for block in BLOCKS} | {b: w for b, w in fixed.items() if b in present}
        weights |= dict(zip(free, values, strict=True))
        if sum(weights.values()) == 0 or (not fixed and max(weights.values()) < 1):
            continue
        key = tuple(weights[block] for block in BLOCKS)
        if key not in seen:
            seen.add(key)
            candidates.append(weights)
    return candidates


# --- balanced k-means ---------------------------------------------------------------------------------------
def _balanced_assign(distances: np.ndarray, mass: np.ndarray, capacity: float, min_members: int) -> np.ndarray:
    """Greedy capacity-constrained assignment: heaviest items first, then most constrained (largest regret).

    In that order each item joins its nearest cluster whose load plus the item's mass stays within
    ``capacity`` (+1e-9), or, where none does, the least loaded cluster. Afterwards every cluster is topped up
    to ``min_members`` items (the leaves it must still fill) with the nearest items of the most populous
    cluster.
    """
    clusters = distances.shape[1]
    preference = np.argsort(distances, axis=1)
    ordered = np.sort(distances, axis=1)
    regret = ordered[:, 1] - ordered[:, 0] if clusters > 1 else np.zeros(len(distances))
    order = np.lexsort((-regret, -mass))
    if np.all(mass == 1.0):
        labels = _greedy_unit_mass(preference, order, math.floor(capacity + 1e-9))
    else:
        labels = _greedy_by_mass(preference, order, mass, capacity + 1e-9)
    _top_up(labels, distances, min_members)
    return labels


def _greedy_unit_mass(preference: np.ndarray, order: np.ndarray, limit: int) -> np.ndarray:
    """The greedy assignment of items of mass 1, each cluster holding at most ``limit``, in at most k passes.

    A pass gives every item left, in ``order``, its first preference among the clusters not yet full; that
    holds up to the first item that would overflow a cluster, after which that cluster is full and the next
    pass starts from there. Items left when every cluster is full go to the least loaded cluster, i.e. in
    turn to clusters 0, 1, ..., k - 1 (all hold ``limit`` then).
    """
    count, clusters = preference.shape
    ranked = preference[order]
    labels = np.empty(count, dtype=np.int64)
    load = np.zeros(clusters, dtype=np.int64)
    start = 0
    while start < count and (open_clusters := load < limit).any():
        rest = ranked[start:]
        choice = rest[np.arange(len(rest)), open_clusters[rest].argmax(axis=1)]
        stop = len(rest)
        for cluster in np.flatnonzero(open_clusters):
            joining = np.flatnonzero(choice == cluster)
            room = limit - load[cluster]
            if len(joining) > room:
                stop = min(stop, int(joining[room]))
        labels[order[start : start + stop]] = choice[:stop]
        load += np.bincount(choice[:stop], minlength=clusters)
        start += stop
    labels[order[start:]] = np.arange(count - start) % clusters
    return labels


def _greedy_by_mass(preference: np.ndarray, order: np.ndarray, mass: np.ndarray, limit: float) -> np.ndarray:
    """The greedy assignment of items of any mass, one item at a time (loads as Python floats: the same
    arithmetic); most items take their first preference, the only one looked up for them."""
    ranked = preference[order]
    load = [0.0] * preference.shape[1]
    chosen = ranked[:, 0].tolist()
    for position, item_mass in enumerate(mass[order].tolist()):
        cluster = chosen[position]
        if load[cluster] + item_mass > limit:
            fitting = (other for other in ranked[position, 1:].tolist() if load[other] + item_mass <= limit)
            cluster = next(fitting, load.index(min(load)))
            chosen[position] = cluster
        load[cluster] += item_mass
    labels = np.empty(len(order), dtype=np.int64)
    labels[order] = chosen
    return labels


def _top_up(labels: np.ndarray, distances: np.ndarray, min_members: int) -> None:
    """Move items into each cluster (in index order) short of ``min_members``, one at a time: the nearest item
    (lowest index on ties) of the then most populous cluster (lowest index on ties). In place.

    While a cluster is filled its donors only lose items, so each donor's members are sorted once per cluster.
    """
    sizes = np.bincount(labels, minlength=distances.shape[1])
    for cluster in range(len(sizes)):
        queues: dict[int, Iterator[int]] = {}
        while sizes[cluster] < min_members:
            donor = int(sizes.argmax())
            if donor not in queues:
                members = np.flatnonzero(labels == donor)
                queues[donor] = iter(members[np.argsort(distances[members, cluster], kind="stable")].tolist())
            labels[next(queues[donor])] = cluster
            sizes[donor] -= 1
            sizes[cluster] += 1


def _squared_distances(points: np.ndarray, squared_norms: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[points, centroids] squared Euclidean distances; ``squared_norms`` is ``(points**2).sum(1)``."""
    return np.maximum(squared_norms[:, None] - 2 * (points @ centroids.T) + (centroids**2).sum(1)[None, :], 0.0)


def _kmeans_plus_plus(
    points: np.ndarray, squared_norms: np.ndarray, clusters: int, weights: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    centroids = [points[rng.choice(len(points), p=weights / weights.sum())]]
    for _ in range(clusters - 1):
        nearest = _squared_distances(points, squared_norms, np.array(centroids)).min(axis=1) * weights
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
    squared_norms = (points**2).sum(1)
    starts = []
    for _ in range(restarts):
        centroids = _kmeans_plus_plus(points, squared_norms, clusters, weights, rng)
        for _ in range(iterations):
            labels = _squared_distances(points, squared_norms, centroids).argmin(axis=1)
            updated = _weighted_centroids(points, labels, weights, centroids)
            if np.allclose(updated, centroids):
                break
            centroids = updated
        inertia = float((_squared_distances(points, squared_norms, centroids).min(axis=1) * weights).sum())
        starts.append((inertia, centroids))
    starts.sort(key=lambda start: start[0])
    capacity = mass.sum() / clusters * (1 + size_tolerance)
    best_labels, best_inertia = np.zeros(count, dtype=np.int64), np.inf
    for _, centroids in starts[:BALANCED_CANDIDATES]:
        labels = np.full(count, -1)
        for _ in range(iterations):
            distances = _squared_distances(points, squared_norms, centroids)
            new_labels = _balanced_assign(distances, mass, capacity, min_members)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            centroids = _weighted_centroids(points, labels, weights, centroids)
        distances = _squared_distances(points, squared_norms, centroids)
        inertia = float((distances[np.arange(count), labels] * weights).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


# --- descriptions -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TermPresence:
    """Which terms each item has (``matrix`` [items, terms], 1 where present) and each term's weight."""

    matrix: sparse.csr_matrix
    terms: list[str]
    weights: np.ndarray


def word_analyser() -> Callable[[str], list[str]]:
    """Lower-cased words of two letters or more, English stop words out: the words of descriptions and coherence."""
    return CountVectorizer(stop_words="english", token_pattern=TOKEN_PATTERN).build_analyzer()


def term_presence(texts: Sequence[str], tags: Sequence[Sequence[str]], tag_weight: float) -> TermPresence:
    """The words of each text (stop words out) and each item's whole tags; a tag weighs ``tag_weight``, a word 1
    (the larger when a term is both)."""
    analyse = word_analyser()
    vocabulary: dict[str, int] = {}
    term_weight: list[float] = []
    rows, cols = [], []
    for item, (text, item_tags) in enumerate(zip(texts, tags, strict=True)):
        terms = {(word, 1.0) for word in analyse(text)} | {(tag, tag_weight) for tag in item_tags}
        for term, weight in terms:
            if term not in vocabulary:
                vocabulary[term] = len(vocabulary)
                term_weight.append(weight)
            column = vocabulary[term]
            term_weight[column] = max(term_weight[column], weight)
            rows.append(item)
            cols.append(column)
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocabulary)))
    matrix.data[:] = 1.0  # a term counted once per item
    return TermPresence(matrix, list(vocabulary), np.array(term_weight))


def rank_terms(presence: TermPresence, groups: Sequence[np.ndarray], top: int = 8) -> list[list[str]]:
    """Per group of item rows, its terms ranked by class-based TF-IDF against the other groups, ties alphabetically.

    ``tf`` is the fraction of the group's items containing the term; the score is
    ``w * tf * log(1 + groups / sum of tf over groups)`` with ``w`` the term's weight (``tag_weight`` for a tag, 1
    for a word), so a term frequent here and rare elsewhere ranks first and tags rank before words.
    """
    if not presence.terms:
        return [[] for _ in groups]
    sizes = np.array([len(group) for group in groups])
    owners = np.repeat(np.arange(len(groups)), sizes)
    members = np.concatenate(groups).astype(np.int64)
    membership = sparse.csr_matrix(
        (np.ones(len(members)), (owners, members)), shape=(len(groups), presence.matrix.shape[0])
    )
    term_frequency = np.asarray((membership @ presence.matrix).todense()) / np.maximum(sizes[:, None], 1)
    scores = (
        term_frequency
        * presence.weights[None, :]
        * np.log1p(len(groups) / np.maximum(term_frequency.sum(axis=0), 1e-9))
    )
    alphabetical = np.empty(len(presence.terms), dtype=np.int64)
    alphabetical[np.argsort(np.array(presence.terms, dtype=object))] = np.arange(len(presence.terms))
    ranked = []
    for row in range(len(groups)):
        order = np.lexsort((alphabetical, -scores[row]))[:top]
        ranked.append([presence.terms[index] for index in order if term_frequency[row, index] > 0])
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
def split_levels(
    vectors: np.ndarray,
    items: pd.DataFrame,
    config: TreeBuildConfig,
    levels: int = TREE_LEVELS,
    restarts: int | None = None,
    iterations: int | None = None,
    progress: bool = False,
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(index path, member rows) of every node of the first ``levels`` levels, by recursive balanced k-means."""
    total_leaves = int(np.prod(config.branching))
    if len(items) < total_leaves:
        raise TreeError(
            f"{len(items)} items cannot fill {total_leaves} leaves of branching {config.branching}; "
            f"choose a smaller branching (--branching)"
        )
    rng = np.random.default_rng(config.seed)
    impressions = items["impressions"].to_numpy(dtype=np.float64)
    mass = np.ones(len(items)) if config.balance_by == "items" else np.maximum(impressions, 1)
    weights = np.log1p(np.maximum(impressions, 0)) + 1e-6
    frontier: list[tuple[tuple[int, ...], np.ndarray]] = [((), np.arange(len(items)))]
    nodes: list[tuple[tuple[int, ...], np.ndarray]] = []
    splits = sum(int(np.prod(config.branching[:depth])) for depth in range(levels))
    with tqdm(total=splits, desc="k-means splits", unit="node", disable=not progress) as bar:
        for depth, width in enumerate(config.branching[:levels]):
            leaves_below = int(np.prod(config.branching[depth + 1 :]))
            next_frontier = []
            for path, members in frontier:
                labels = balanced_kmeans(
                    vectors[members],
                    width,
                    mass=mass[members],
                    centroid_weights=weights[members],
                    size_tolerance=config.size_tolerance,
                    min_members=leaves_below,
                    iterations=iterations or config.iterations,
                    restarts=restarts or config.restarts,
                    rng=rng,
                )
                next_frontier += [(path + (child,), members[labels == child]) for child in range(width)]
                bar.update()
            nodes += next_frontier
            frontier = next_frontier
    return nodes


def build_kmeans_tree(
    items: pd.DataFrame,
    config: TreeBuildConfig,
    embeddings: ItemEmbeddings,
    weights: dict[str, float] | None = None,
    progress: bool = False,
) -> ClusterTree:
    """Recursive balanced k-means over the ``weights``-combined ``embeddings`` (see the module docstring)."""
    vectors = embeddings.vectors(weights or DEFAULT_WEIGHTS)
    nodes = split_levels(vectors, items, config, progress=progress)
    presence = term_presence(item_texts(items), item_tags(items), config.tag_weight)  # once for every level
    taken: set[str] = set()
    tree_nodes = []
    for level in range(1, TREE_LEVELS + 1):
        level_nodes = {path_node_id(path): members for path, members in nodes if len(path) == level}
        ranked = dict(zip(level_nodes, rank_terms(presence, list(level_nodes.values())), strict=True))
        descriptions = _unique_descriptions(ranked, config.description_words, taken)
        tree_nodes += [
            ClusterNode(node_id, level, node_id.rsplit(".", 1)[0] if level > 1 else None, descriptions[node_id])
            for node_id in level_nodes
        ]
    item_ids = np.array([str(item_id) for item_id in items["item_id"]], dtype=object)
    leaves: dict[str, str] = {}
    for path, members in nodes:
        if len(path) == TREE_LEVELS:
            leaves.update(dict.fromkeys(item_ids[members].tolist(), path_node_id(path)))
    return ClusterTree(tree_nodes, leaves, TREE_LEVELS)


def select_weights(
    items: pd.DataFrame,
    config: TreeBuildConfig,
    embeddings: ItemEmbeddings,
    validation_pairs: pd.DataFrame,
    progress: bool = False,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The block weights whose tree best predicts held-out co-engagement, and every setting's score.

    For each of :func:`candidate_weights`, the tree's first ``selection_level`` levels are built (with
    ``SELECTION_RESTARTS`` restarts) and scored by the co-engagement lift of ``validation_pairs`` at that
    level; the highest lift wins (ties: the earlier candidate, i.e. smaller collaborative weight first).
    """
    candidates = candidate_weights(config, list(embeddings.blocks))
    if not candidates:
        return dict(DEFAULT_WEIGHTS), []
    scores = []
    for weights in tqdm(candidates, desc="weight selection", unit="setting", disable=not progress):
        nodes = split_levels(
            embeddings.vectors(weights),
            items,
            config,
            levels=config.selection_level,
            restarts=SELECTION_RESTARTS,
            iterations=SELECTION_ITERATIONS,
        )
        node_of = {
            embeddings.item_ids[member]: path_node_id(path)
            for path, members in nodes
            if len(path) == config.selection_level
            for member in members
        }
        lift = coengagement_lift(node_of, validation_pairs)
        scores.append({"weights": weights, "validation_lift": round(lift["lift"], 4) if lift else None})
    best = max(range(len(scores)), key=lambda index: (scores[index]["validation_lift"] or 0.0, -index))
    return dict(candidates[best]), scores


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
    """A built tree with how it was built and the embedding problems met on the way.

    ``weights`` are the block weights used, ``weight_selection`` each validated setting with its held-out lift
    (empty when nothing was validated), ``test_pairs`` the held-out positive pairs for the report's lift.
    """

    tree: ClusterTree
    method: str
    video_errors: dict[str, str] = field(default_factory=dict)
    items_without_video: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    weight_selection: list[dict[str, Any]] = field(default_factory=list)
    items_without_interactions: int | None = None
    test_pairs: pd.DataFrame | None = None
    pair_counts: dict[str, int] = field(default_factory=dict)


def build_tree(
    items: pd.DataFrame,
    config: TreeBuildConfig,
    progress: bool = False,
    interactions: pd.DataFrame | None = None,
) -> TreeBuild:
    """Build the cluster tree of validated ``items`` (see :class:`TreeBuildConfig` for the method).

    With ``interactions``, their positive pairs are split by user into train (the collaborative block),
    validation (the weights of free blocks, :func:`select_weights`) and test (``TreeBuild.test_pairs``).
    """
    config.validate()
    has_taxonomy = "taxonomy" in items and items["taxonomy"].notna().all() and len(items) > 0
    method = ("taxonomy" if has_taxonomy else "kmeans") if config.method == "auto" else config.method
    splits = None
    if interactions is not None and len(interactions):
        pairs = positive_pairs(interactions, config.positive_satisfaction)
        splits = split_pairs_by_user(pairs, config.validation_fraction, config.test_fraction, config.seed)
    pair_counts = {name: len(frame) for name, frame in splits.items()} if splits else {}
    test_pairs = splits["test"] if splits else None
    if method == "taxonomy":
        return TreeBuild(import_taxonomy(items), method, test_pairs=test_pairs, pair_counts=pair_counts)
    embeddings = item_embeddings(items, config, progress, splits["train"] if splits else None)
    selection: list[dict[str, Any]] = []
    free = [block for block in BLOCKS if block not in config.fixed_weights() and block in embeddings.blocks]
    if free and splits is not None and len(splits["validation"]):
        weights, selection = select_weights(items, config, embeddings, splits["validation"], progress)
    else:
        weights = {block: DEFAULT_WEIGHTS[block] if block in embeddings.blocks else 0.0 for block in BLOCKS}
        weights |= config.fixed_weights()
    tree = build_kmeans_tree(items, config, embeddings, weights, progress)
    return TreeBuild(
        tree,
        method,
        embeddings.video_errors,
        embeddings.items_without_video,
        weights,
        selection,
        embeddings.items_without_interactions if "collaborative" in embeddings.blocks else None,
        test_pairs,
        pair_counts,
    )


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


COHERENCE_PAIRS = 4000


def _jaccard(left: frozenset[str], right: frozenset[str]) -> float:
    union = len(left | right)
    return len(left & right) / union if union else 0.0


def text_coherence(
    groups: Sequence[np.ndarray], term_sets: Sequence[frozenset[str]], seed: int = 0
) -> dict[str, float]:
    """Mean Jaccard of the term sets of two items in one group, over that of two random items, and the ratio.

    Within: ``COHERENCE_PAIRS`` pairs, each from a group drawn in proportion to its number of item pairs;
    random: as many pairs of distinct items from the whole catalogue. Items without terms are left out.
    """
    rng = np.random.default_rng(seed)
    with_terms = [np.array([member for member in group if term_sets[member]]) for group in groups]
    with_terms = [group for group in with_terms if len(group) >= 2]
    everyone = np.concatenate(with_terms) if with_terms else np.array([], dtype=np.int64)
    if len(everyone) < 2:
        return {"within": 0.0, "random": 0.0, "ratio": 0.0}
    pair_counts = np.array([len(group) * (len(group) - 1) / 2 for group in with_terms])
    chosen = rng.choice(len(with_terms), size=COHERENCE_PAIRS, p=pair_counts / pair_counts.sum())
    within = []
    for group_index in chosen:
        left, right = rng.choice(with_terms[group_index], size=2, replace=False)
        within.append(_jaccard(term_sets[left], term_sets[right]))
    random_pairs = [rng.choice(everyone, size=2, replace=False) for _ in range(COHERENCE_PAIRS)]
    baseline = float(np.mean([_jaccard(term_sets[left], term_sets[right]) for left, right in random_pairs]))
    mean_within = float(np.mean(within))
    return {"within": mean_within, "random": baseline, "ratio": mean_within / baseline if baseline else 0.0}


def coherence_terms(items: pd.DataFrame) -> tuple[str, list[frozenset[str]]]:
    """What text coherence compares: the items' tags when any item has tags, else their title/description words."""
    tags = item_tags(items)
    if any(tags):
        return "tags", [frozenset(item) for item in tags]
    analyse = word_analyser()
    return "words", [frozenset(analyse(text)) for text in item_texts(items)]


def tree_report(
    tree: ClusterTree,
    items: pd.DataFrame,
    truth: pd.DataFrame | None = None,
    heldout_pairs: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Per level: sizes, item-count and traffic balance (max/min), text coherence, the co-engagement lift of
    ``heldout_pairs`` (when given) and NMI/purity against ``truth`` (when given)."""
    frame = tree.item_nodes_frame().merge(items[["item_id", "impressions"]], on="item_id")
    position = {item_id: index for index, item_id in enumerate(items["item_id"].astype(str))}
    coherence_source, term_sets = coherence_terms(items)
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
        groups = [
            np.array([position[item_id] for item_id in members if item_id in position])
            for _, members in frame.groupby(column)["item_id"]
        ]
        coherence = text_coherence(groups, term_sets, seed=level)
        entry["text_coherence"] = round(coherence["ratio"], 4)
        entry["text_jaccard_within"] = round(coherence["within"], 4)
        entry["text_jaccard_random"] = round(coherence["random"], 4)
        if heldout_pairs is not None:
            lift = coengagement_lift(dict(zip(frame["item_id"], frame[column], strict=True)), heldout_pairs)
            if lift is not None:
                entry["coengagement_lift"] = round(lift["lift"], 4)
                entry["coengagement_inside"] = round(lift["inside"], 4)
                entry["coengagement_chance"] = round(lift["chance"], 4)
        if truth is not None and column in truth:
            joined = frame[["item_id", column]].merge(truth[["item_id", column]], on="item_id", suffixes=("", "_true"))
            entry["nmi"] = round(float(normalized_mutual_info_score(joined[f"{column}_true"], joined[column])), 4)
            entry["purity"] = round(purity(joined[column].tolist(), joined[f"{column}_true"].tolist()), 4)
        levels[str(level)] = entry
    report: dict[str, Any] = {"items": int(len(frame)), "text_coherence_terms": coherence_source, "levels": levels}
    if heldout_pairs is not None:
        report["heldout_pairs"] = int(len(heldout_pairs))
    return report
