"""Beyond-accuracy and accuracy metrics of recommendation slates; each a small pure function.

A *slate* is the ordered list of item ids one arm showed (or would show) for one request. Functions take
one entry per request, so a bootstrap can resample requests and call them again. Every docstring states
the formula and its source.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence


def _impression_count(slates: Sequence[Sequence[str]]) -> int:
    return sum(len(slate) for slate in slates)


def novel_impression_ratio(slates: Sequence[Sequence[str]], competitor_items: Sequence[Collection[str]]) -> float:
    """Share of an arm's impressions that no competing model recommends for the same request.

    NIR = Σ_r |{i ∈ S_r : i ∉ C_r}| / Σ_r |S_r|, with S_r the arm's slate for request r and C_r the union of
    the competing models' recommendations for r. Source: Wang et al., "Serendipitous Recommendation with
    Multimodal LLM", §4.2 ("the percentage of model impressions that are solely recommended by this model").
    """
    total = _impression_count(slates)
    if total == 0:
        return math.nan
    novel = sum(
        item not in competitors for slate, competitors in zip(slates, competitor_items, strict=True) for item in slate
    )
    return novel / total


def good_cluster_share(relations: Sequence[Sequence[str]], good: Collection[str] = ("affine", "secondary")) -> float:
    """Share of impressions in one of the context's good serendipitous clusters.

    Σ_r |{i ∈ S_r : relation(c_r, i) ∈ good}| / Σ_r |S_r|, with relation the ground-truth relation of item i to
    the context c_r (simulation: the world's affine or secondary sibling cluster). The planner's target: paper
    §2, "affine" serendipitous clusters.
    """
    total = _impression_count(relations)
    if total == 0:
        return math.nan
    return sum(relation in good for slate in relations for relation in slate) / total


def relative_change(value: float, reference: float) -> float:
    """Relative change of ``value`` over ``reference``: value / reference − 1 (paper Figs 6-8 plot it in %)."""
    return value / reference - 1 if reference else math.nan


def positive_feedback_ratio(positive: Sequence[Sequence[bool]]) -> float:
    """Share of impressions with positive feedback: Σ_r Σ_i 1[positive_ri] / Σ_r |S_r|.

    Source: Wang et al. §4.2 ("positive feedback ratio", the quality side of Fig. 6).
    """
    total = _impression_count(positive)
    return sum(sum(bool(p) for p in flags) for flags in positive) / total if total else math.nan


def mean_satisfaction(satisfaction: Sequence[Sequence[float]]) -> float:
    """Mean satisfaction per impression: Σ_r Σ_i s_ri / Σ_r |S_r| (the world's satisfaction rate in [0, 1])."""
    total = _impression_count(satisfaction)
    return sum(sum(values) for values in satisfaction) / total if total else math.nan


def ge_serendipity(
    slates: Sequence[Sequence[str]], primitive_items: Sequence[Collection[str]], useful: Sequence[Sequence[bool]]
) -> float:
    """Serendipity of Ge et al.: per list |UNEXP ∩ USEFUL| / |S|, averaged over requests.

    UNEXP = S \\ PM, the items of the slate S that the primitive (obvious) model PM does not recommend — here
    the exploitation arm's slate for the same request — and USEFUL the items the user rated positively.
    Source: Ge, Delgado-Battenfeld, Jannach, "Beyond accuracy: evaluating recommender systems by coverage and
    serendipity", RecSys 2010, §4.
    """
    per_list = [
        sum(item not in obvious and bool(liked) for item, liked in zip(slate, flags, strict=True)) / len(slate)
        for slate, obvious, flags in zip(slates, primitive_items, useful, strict=True)
        if slate
    ]
    return sum(per_list) / len(per_list) if per_list else math.nan


def cluster_unexpectedness(
    slate_clusters: Sequence[Sequence[str]], history_clusters: Sequence[Collection[str]]
) -> float:
    """Share of recommended items whose planning-level cluster the user has not consumed, averaged over requests.

    U = mean_r (1/|S_r|) Σ_{i ∈ S_r} 1[c_l(i) ∉ C_l(H_r)], with c_l(i) the level-l cluster of item i and
    C_l(H_r) the clusters of the request's history (context item included). Unexpectedness as distance from
    the user's expectations (Adamopoulos & Tuzhilin, "On unexpectedness in recommender systems", ACM TIST
    2014), measured at cluster granularity as in the paper's §2 definition of serendipity.
    """
    per_list = [
        sum(cluster not in seen for cluster in clusters) / len(clusters)
        for clusters, seen in zip(slate_clusters, history_clusters, strict=True)
        if clusters
    ]
    return sum(per_list) / len(per_list) if per_list else math.nan


def catalog_coverage(slates: Sequence[Sequence[str]], catalog_size: int) -> float:
    """Share of the catalogue recommended at least once: |∪_r S_r| / |I|.

    Source: Ge et al. 2010, §3 ("catalog coverage"); recommenders-team ``catalog_coverage``.
    """
    return len({item for slate in slates for item in slate}) / catalog_size if catalog_size else math.nan


def gini_index(slates: Sequence[Sequence[str]], catalog: Collection[str]) -> float:
    """Gini index of how impressions spread over the catalogue (0: uniform, → 1: all on one item).

    G = Σ_{j=1..n} (2j − n − 1) · x_(j) / (n · Σ_j x_j), with x_(1) ≤ … ≤ x_(n) the impression counts of the
    n catalogue items (items never shown count 0). Source: Fleder & Hosanagar, "Blockbuster culture's next
    rise or fall", Management Science 2009; Castells, Hurley, Vargas, "Novelty and diversity in recommender
    systems", Recommender Systems Handbook 2015 (Gini of the exposure distribution).
    """
    counts = Counter(item for slate in slates for item in slate)
    exposures = sorted([counts.get(item, 0) for item in catalog])
    n, total = len(exposures), sum(exposures)
    if n == 0 or total == 0:
        return math.nan
    return sum((2 * j - n - 1) * x for j, x in enumerate(exposures, start=1)) / (n * total)


def recall_at_k(slates: Sequence[Sequence[str]], targets: Sequence[str], k: int = 10) -> float:
    """Held-out hit rate: mean_r 1[t_r ∈ S_r[:k]] (one held-out target per request, so Recall@k = HR@k).

    Same protocol as ``serendip.models.sasrec.ranking_metrics`` (leave-last-out, full ranking, history masked).
    """
    hits = [target in slate[:k] for slate, target in zip(slates, targets, strict=True)]
    return sum(hits) / len(hits) if hits else math.nan


def ndcg_at_k(slates: Sequence[Sequence[str]], targets: Sequence[str], k: int = 10) -> float:
    """NDCG@k with one relevant item: mean_r 1/log2(rank_r + 1) when the target's 1-based rank_r ≤ k, else 0.

    The ideal DCG of a single relevant item is 1. Source: Järvelin & Kekäläinen, "Cumulated gain-based
    evaluation of IR techniques", ACM TOIS 2002; same protocol as ``serendip.models.sasrec.ranking_metrics``.
    """
    gains = []
    for slate, target in zip(slates, targets, strict=True):
        top = list(slate[:k])
        gains.append(1 / math.log2(top.index(target) + 2) if target in top else 0.0)
    return sum(gains) / len(gains) if gains else math.nan
