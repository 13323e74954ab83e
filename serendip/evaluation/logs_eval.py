"""Evaluation on your own logs: an imported catalogue (``items.parquet`` + ``interactions.parquet`` at the root of
``--artifacts``, no ``world/``), so no ground truth and no simulated users.

Requests: each user's held-out transition, the SASRec leave-last-out test case (``simulator.heldout_requests``):
positives (satisfaction ≥ the sasrec artifact's ``min_satisfaction``, else 0.5) in time order; context = the
second-to-last positive, target = the last, history = every positive before the target. When a ``sasrec``
artifact exists its vocabulary and threshold are used, so the targets are exactly the ones it held out of
training. The tree (and a curation) were built on the whole logs, targets included.

Arms (in-process, no services): popularity in the context's cluster; exploitation and context-similar SASRec
(sasrec artifact: its TorchScript user encoder on the history / on the context item); the FALLBACK policy
(``planner.fallback``: the sibling clusters with the best smoothed satisfaction of logged serendipitous
transitions, built from the logs before each target); the neural-linear sibling bandit (sasrec artifact;
warm-started on those logs); the Planner's plan table (plans artifact; FALLBACK when a context has none); a
random sibling. A planned cluster is filled with the user's SASRec scores restricted to it (popularity without a
sasrec artifact), history excluded.

Metrics per arm, one unit per request, 95 % bootstrap intervals over requests (``confidence.bootstrap``):

``cluster_hit``         share of requests whose plan or slate names the target's planning-level cluster, or the
                        target itself
``item_hit``            share of requests whose slate holds the target (Recall@k)
``serendipitous_hit``   share of requests whose target is serendipitous to the context (another cluster, same
                        level-(l-δ) parent) and whose plan or slate names the target's cluster
``novelty``             share of slate items outside the clusters of the user's history (context included),
                        averaged over requests (``metrics.cluster_unexpectedness``)
``coverage``            |∪ slates| / |catalogue| (``metrics.catalog_coverage``)
``clusters_named``      mean number of distinct planning-level clusters a request's plan or slate names: a slate
                        arm names up to k, a planned arm ``num_clusters``, so compare cluster hits within a kind
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner.fallback import FallbackPolicy
from serendip.artifacts.catalogue import Catalogue, CatalogueSource, open_catalogue
from serendip.artifacts.curation import CURATION_FILES, CURATION_KIND
from serendip.artifacts.plans import PLANS_KIND, PlanTable
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact, left_pad
from serendip.artifacts.store import LATEST_NAME, input_record, read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import ArtifactError
from serendip.evaluation import metrics
from serendip.evaluation.bandit import ClusterBandit
from serendip.evaluation.confidence import bootstrap
from serendip.evaluation.simulator import EvaluationRequest, Slate, heldout_requests, sample_requests

DEFAULT_MIN_SATISFACTION = 0.5
"""Engaged = satisfaction ≥ this, when no sasrec artifact names its own threshold."""
METRICS = ("cluster_hit", "item_hit", "serendipitous_hit", "novelty", "coverage", "clusters_named")
METRIC_LABELS = {
    "cluster_hit": "next cluster or item named",
    "item_hit": "next item in slate (Recall@k)",
    "serendipitous_hit": "serendipitous hit",
    "novelty": "novelty (outside history clusters)",
    "coverage": "catalogue coverage",
    "clusters_named": "clusters named / request",
}
NEEDS_SIMULATOR = (
    "not computed without a simulator: positive-feedback ratio (PFR), mean satisfaction, good-cluster share, "
    "novel impression ratio, Ge serendipity, engagement and the Fig. 8 visual buckets -- they need every arm's "
    "slate to be shown and answered (a simulated user from the world's ground truth, or a live A/B test whose logs "
    "go to --replay), and your logs only hold what was shown then"
)
TRAINING_NOTE = (
    "the held-out transitions come from the same logs the tree, curation, FALLBACK prior and plans were built "
    "from, so they may be in their training data unless you split the logs by time; the sasrec artifact (when "
    "present) held these exact targets out of training"
)


class LogsEvaluationError(ArtifactError):
    """The artifacts root lacks what the log-based evaluation needs (a tree, held-out transitions)."""


def has_imported_catalogue(artifacts: Path) -> bool:
    """True when ``artifacts`` holds an imported catalogue and no world artifact (docs/data.md §1)."""
    if (artifacts / WORLD_KIND).exists():
        return False
    try:
        return CatalogueSource().resolve(artifacts).items is not None
    except ArtifactError:
        return False


def _newest(artifacts: Path, kind: str) -> Path | None:
    return resolve_artifact(artifacts, kind) if (artifacts / kind / LATEST_NAME).is_file() else None


@dataclass
class LogsInputs:
    """What the artifacts root offers: the catalogue, the tree and the optional sasrec / curation / plans."""

    catalogue: Catalogue
    tree: ClusterTree
    level: int
    delta: int
    paths: dict[str, Path]
    sasrec: SASRecArtifact | None = None
    min_satisfaction: float = DEFAULT_MIN_SATISFACTION
    plans: PlanTable | None = None
    curation_heldout_contexts: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, artifacts: Path, level: int) -> LogsInputs:
        """Read the newest version of each kind under ``artifacts``; the curation's level and δ win over ``level``."""
        catalogue = open_catalogue(CatalogueSource(), artifacts)
        if catalogue.interactions is None or catalogue.interactions.empty:
            raise LogsEvaluationError(f"{artifacts} has no interactions.parquet: no logs to hold transitions out of")
        tree_dir = _newest(artifacts, TREE_KIND)
        if tree_dir is None:
            raise LogsEvaluationError(
                f"{artifacts} has no tree artifact; run python -m serendip.jobs.build_tree --artifacts {artifacts}"
            )
        paths = {TREE_KIND: tree_dir}
        delta, heldout = 1, set()
        curation_dir = _newest(artifacts, CURATION_KIND)
        if curation_dir is not None:
            paths[CURATION_KIND] = curation_dir
            parameters = read_manifest(curation_dir)["parameters"]
            level, delta = int(parameters["level"]), int(parameters["delta"])
            examples = pd.read_parquet(curation_dir / CURATION_FILES["examples"], columns=["context_item_id", "split"])
            heldout = set(examples.loc[examples["split"] == "heldout", "context_item_id"])
        inputs = cls(catalogue, ClusterTree.load(tree_dir), level, delta, paths, curation_heldout_contexts=heldout)
        sasrec_dir = _newest(artifacts, SASREC_KIND)
        if sasrec_dir is not None:
            paths[SASREC_KIND] = sasrec_dir
            inputs.sasrec = SASRecArtifact.load(sasrec_dir)
            inputs.min_satisfaction = float(read_manifest(sasrec_dir)["parameters"]["min_satisfaction"])
        plans_dir = _newest(artifacts, PLANS_KIND)
        if plans_dir is not None:
            paths[PLANS_KIND] = plans_dir
            inputs.plans = PlanTable.load(plans_dir)
        return inputs


def training_log(interactions: pd.DataFrame, requests: Sequence[EvaluationRequest]) -> pd.DataFrame:
    """The interactions before each evaluated user's held-out target (every interaction of the other users)."""
    targets = pd.DataFrame({"user_id": [r.user_id for r in requests], "item_id": [r.heldout_item_id for r in requests]})
    cutoff = interactions.merge(targets, on=["user_id", "item_id"]).groupby("user_id")["ts"].max()
    limit = interactions["user_id"].map(cutoff)
    return interactions[limit.isna() | (interactions["ts"] < limit)]


def transitions(log: pd.DataFrame) -> pd.DataFrame:
    """context_item_id -> item_id rows with satisfaction: the logged context, else the user's previous item."""
    log = log.sort_values(["user_id", "ts"], kind="stable")
    previous = log.groupby("user_id")["item_id"].shift(1)
    context = log["context_item_id"].fillna(previous) if "context_item_id" in log else previous
    return log.assign(context_item_id=context).dropna(subset=["context_item_id"])[
        ["context_item_id", "item_id", "satisfaction"]
    ]


def fallback_candidates(moves: pd.DataFrame, tree: ClusterTree, level: int, delta: int) -> pd.DataFrame:
    """The curation's ``candidates`` table rebuilt from ``moves``: mean satisfaction and pair count of the
    serendipitous transitions per (context item, next item's cluster)."""
    known = moves["context_item_id"].map(lambda i: i in tree) & moves["item_id"].map(lambda i: i in tree)
    moves = moves[known]
    serendipitous = [
        tree.is_serendipitous(a, b, level, delta)
        for a, b in zip(moves["context_item_id"], moves["item_id"], strict=True)
    ]
    moves = moves[np.asarray(serendipitous, dtype=bool)]
    moves = moves.assign(cluster_id=moves["item_id"].map(lambda i: tree.node_of(i, level)))
    grouped = moves.groupby(["context_item_id", "cluster_id"])["satisfaction"]
    return grouped.agg(satisfaction="mean", pairs="size").reset_index()


class SASRecScorer:
    """The sasrec artifact's TorchScript user encoder and item table, in-process (what Triton + Retriever serve)."""

    def __init__(self, artifact: SASRecArtifact) -> None:
        import torch

        self._torch = torch
        self.artifact = artifact
        self.encoder = torch.jit.load(str(artifact.user_encoder_path), map_location="cpu").eval()
        self.item_ids = list(artifact.vocabulary.item_ids)
        self.table = artifact.item_embeddings[[artifact.vocabulary.index(i) for i in self.item_ids]]

        self.column_of = {item: column for column, item in enumerate(self.item_ids)}

    def user_embeddings(self, histories: Sequence[Sequence[str]], batch: int = 256) -> np.ndarray:
        """[len(histories), hidden] user embeddings of the histories (unknown items dropped)."""
        vocabulary, max_len = self.artifact.vocabulary, self.artifact.config.max_len
        rows = []
        for start in range(0, len(histories), batch):
            indices = [
                left_pad([vocabulary.index(i) for i in h if vocabulary.index(i) is not None], max_len)
                for h in histories[start : start + batch]
            ]
            with self._torch.no_grad():
                rows.append(self.encoder(self._torch.tensor(indices, dtype=self._torch.long)).float().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.table.shape[1]), dtype=np.float32)

    def top(self, user: np.ndarray, columns: np.ndarray | None, excluded: set[str], k: int) -> list[str]:
        """The ``k`` best items by user · item among ``columns`` (None: every item), ``excluded`` left out."""
        candidates = np.arange(len(self.item_ids)) if columns is None else columns
        if not len(candidates):
            return []
        scores = self.table[candidates] @ user
        wanted = min(len(candidates), k + len(excluded))
        best = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(candidates) else np.arange(len(scores))
        best = best[np.lexsort((candidates[best], -scores[best]))]
        ranked = (self.item_ids[candidates[i]] for i in best)
        return [item for item in ranked if item not in excluded][:k]


ClusterChooser = Callable[[EvaluationRequest], tuple[list[str], str]]
"""request -> (planned clusters, plan source)."""


@dataclass
class LogsArms:
    """The arms' slates for one set of requests."""

    requests: list[EvaluationRequest]
    inputs: LogsInputs
    log: pd.DataFrame
    k: int
    num_clusters: int
    seed: int
    bandit_alpha: float = 0.5
    skipped: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tree, level = self.inputs.tree, self.inputs.level
        engaged = self.log[self.log["satisfaction"] >= self.inputs.min_satisfaction]
        counts = engaged["item_id"].value_counts()
        self.popular = sorted(tree.item_ids, key=lambda i: (-int(counts.get(i, 0)), i))
        self.popular_by_cluster: dict[str, list[str]] = {}
        for item in self.popular:
            self.popular_by_cluster.setdefault(str(tree.node_of(item, level)), []).append(item)
        self.scorer = SASRecScorer(self.inputs.sasrec) if self.inputs.sasrec is not None else None
        self.users = self.scorer.user_embeddings([r.history for r in self.requests]) if self.scorer else None
        self.cluster_columns = (
            {
                cluster: np.asarray([self.scorer.column_of[i] for i in items if i in self.scorer.column_of], dtype=int)
                for cluster, items in self.popular_by_cluster.items()
            }
            if self.scorer
            else {}
        )

    def cluster(self, item: str) -> str | None:
        return self.inputs.tree.node_of(item, self.inputs.level) if item in self.inputs.tree else None

    def _top(self, ranked: Sequence[str], request: EvaluationRequest, limit: int) -> list[str]:
        excluded = set(request.history)
        return [item for item in ranked if item not in excluded][:limit]

    def fill(self, position: int, request: EvaluationRequest, clusters: list[str]) -> list[str]:
        """``k`` items from ``clusters``, evenly split: the user's SASRec scores there, else the most popular."""
        quota = max(1, math.ceil(self.k / max(len(clusters), 1)))
        slate: list[str] = []
        for cluster in clusters:
            if self.scorer is not None and self.users is not None:
                columns = self.cluster_columns.get(cluster, np.zeros(0, dtype=int))
                picked = self.scorer.top(self.users[position], columns, set(request.history), self.k)
            else:
                picked = self._top(self.popular_by_cluster.get(cluster, []), request, self.k)
            slate += [item for item in picked if item not in slate][:quota]
        return slate[: self.k]

    def planned(self, chooser: ClusterChooser) -> list[Slate]:
        slates = []
        for position, request in enumerate(self.requests):
            clusters, source = chooser(request)
            slates.append(Slate(tuple(self.fill(position, request, clusters)), tuple(clusters), source))
        return slates

    def all_slates(self) -> dict[str, list[Slate]]:
        """Every arm that can run on these inputs; the others are named in ``skipped`` with the reason."""
        tree, level, delta = self.inputs.tree, self.inputs.level, self.inputs.delta
        slates: dict[str, list[Slate]] = {}
        self.labels["popular_in_cluster"] = "popularity in the context's cluster"
        slates["popular_in_cluster"] = [
            Slate(tuple(self._top(self.popular_by_cluster.get(str(self.cluster(r.context_item_id)), []), r, self.k)))
            for r in self.requests
        ]
        if self.scorer is not None and self.users is not None:
            scorer, users = self.scorer, self.users
            self.labels["exploitation"] = "exploitation (SASRec on the history)"
            slates["exploitation"] = [
                Slate(tuple(scorer.top(users[p], None, set(r.history), self.k))) for p, r in enumerate(self.requests)
            ]
            contexts = scorer.user_embeddings([[r.context_item_id] for r in self.requests])
            self.labels["context_similar"] = "context-similar SASRec"
            slates["context_similar"] = [
                Slate(tuple(scorer.top(contexts[p], None, set(r.history), self.k))) for p, r in enumerate(self.requests)
            ]
        else:
            for name in ("exploitation", "context_similar", "bandit"):
                self.skipped[name] = "no sasrec artifact (python -m serendip.jobs.train_sasrec --data <artifacts>)"
        moves = transitions(self.log)
        policy = FallbackPolicy.from_candidates(fallback_candidates(moves, tree, level, delta), tree, level, delta)

        def fallback(request: EvaluationRequest) -> tuple[list[str], str]:
            ranked = policy.for_cluster(self.cluster(request.context_item_id))
            return [c.cluster_id for c in ranked[: self.num_clusters]], "FALLBACK"

        self.labels["fallback"] = "FALLBACK policy (best logged sibling)"
        slates["fallback"] = self.planned(fallback)
        if self.inputs.sasrec is not None:
            sasrec = self.inputs.sasrec
            embeddings = {
                item: sasrec.item_embeddings[sasrec.vocabulary.index(item)] for item in sasrec.vocabulary.item_ids
            }
            bandit = ClusterBandit(tree, level, embeddings, self.bandit_alpha, "siblings", delta)
            warm = bandit.warm_start(moves)
            self.notes["bandit"] = f"warm-started on {warm} logged cluster-changing transitions before the targets"
            self.labels["bandit"] = "neural-linear bandit (sibling clusters)"
            slates["bandit"] = self.planned(lambda r: ([bandit.choose(r.context_item_id, r.history)], "BANDIT"))
        plans = self.inputs.plans
        if plans is not None:

            def plan(request: EvaluationRequest) -> tuple[list[str], str]:
                cached = [
                    c.cluster_id for c in plans.get(request.context_item_id) if c.cluster_id in tree.nodes_at(level)
                ]
                return (cached[: self.num_clusters], "CACHE") if cached else fallback(request)

            self.labels["plan_table"] = f"Planner plan table ({plans.version}; FALLBACK without a plan)"
            slates["plan_table"] = self.planned(plan)
        else:
            self.skipped["plan_table"] = "no plans artifact (make batch-plans ARTIFACTS=<artifacts>)"
        rng = np.random.default_rng(self.seed)

        def random_sibling(request: EvaluationRequest) -> tuple[list[str], str]:
            own = self.cluster(request.context_item_id)
            candidates = tree.siblings(own, delta) if own is not None else tree.nodes_at(level)
            chosen = rng.choice(len(candidates), size=min(self.num_clusters, len(candidates)), replace=False)
            return [candidates[i] for i in sorted(chosen)], "RANDOM"

        self.labels["random_sibling"] = "random sibling cluster"
        slates["random_sibling"] = self.planned(random_sibling)
        return slates


@dataclass(frozen=True)
class RequestOutcomes:
    """Per request of one arm: the hit flags, slate clusters and history clusters (bootstrap units)."""

    cluster_hit: np.ndarray
    item_hit: np.ndarray
    serendipitous_hit: np.ndarray
    clusters_named: np.ndarray
    slates: list[tuple[str, ...]]
    slate_clusters: list[list[str]]
    history_clusters: list[set[str]]


def outcomes(arms: LogsArms, slates: list[Slate]) -> RequestOutcomes:
    """Each request's outcome under ``slates`` (same order as ``arms.requests``)."""
    tree, level, delta = arms.inputs.tree, arms.inputs.level, arms.inputs.delta
    cluster_hit, item_hit, serendipitous_hit, slate_clusters, history_clusters = [], [], [], [], []
    named_counts = []
    for request, slate in zip(arms.requests, slates, strict=True):
        target = str(request.heldout_item_id)
        clusters = [c for c in (arms.cluster(i) for i in slate.item_ids) if c is not None]
        named = set(slate.planned_clusters) | set(clusters)
        hit = target in slate.item_ids or arms.cluster(target) in named
        known = target in tree and request.context_item_id in tree
        serendipitous = known and tree.is_serendipitous(request.context_item_id, target, level, delta)
        named_counts.append(len(named))
        cluster_hit.append(hit)
        item_hit.append(target in slate.item_ids)
        serendipitous_hit.append(bool(serendipitous and hit))
        slate_clusters.append(clusters)
        history_clusters.append({c for c in (arms.cluster(i) for i in request.history) if c is not None})
    return RequestOutcomes(
        np.asarray(cluster_hit, dtype=np.float64),
        np.asarray(item_hit, dtype=np.float64),
        np.asarray(serendipitous_hit, dtype=np.float64),
        np.asarray(named_counts, dtype=np.float64),
        [s.item_ids for s in slates],
        slate_clusters,
        history_clusters,
    )


def arm_metrics(result: RequestOutcomes, catalogue_size: int, resamples: int, seed: int) -> dict[str, Any]:
    """Every metric of one arm with its 95 % bootstrap interval over requests."""
    units = len(result.slates)

    def mean_of(values: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda positions: float(values[positions].mean()) if len(positions) else math.nan

    statistics: dict[str, Callable[[np.ndarray], float]] = {
        "cluster_hit": mean_of(result.cluster_hit),
        "item_hit": mean_of(result.item_hit),
        "serendipitous_hit": mean_of(result.serendipitous_hit),
        "novelty": lambda positions: metrics.cluster_unexpectedness(
            [result.slate_clusters[i] for i in positions], [result.history_clusters[i] for i in positions]
        ),
        "coverage": lambda positions: metrics.catalog_coverage([result.slates[i] for i in positions], catalogue_size),
        "clusters_named": mean_of(result.clusters_named),
    }
    return {name: bootstrap(statistic, units, resamples, seed).to_dict() for name, statistic in statistics.items()}


@dataclass(frozen=True)
class LogsEvaluation:
    """Options of the log-based evaluation (``evaluate`` passes its own)."""

    artifacts: Path
    users: int | None = None
    k: int = 10
    num_clusters: int = 1
    level: int = 3
    bandit_alpha: float = 0.5
    resamples: int = 1000
    seed: int = 0


def evaluate_logs(options: LogsEvaluation, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every arm that runs without a simulator on the held-out transitions of the imported logs; the results
    dictionary ``logs_report.write_logs_report`` writes."""
    inputs = LogsInputs.load(options.artifacts, options.level)
    say("inputs: catalogue " + ", ".join(f"{kind} {path.name}" for kind, path in inputs.paths.items()))
    interactions = inputs.catalogue.interactions
    assert interactions is not None
    known = inputs.sasrec.vocabulary.item_ids if inputs.sasrec is not None else inputs.tree.item_ids
    requests = sample_requests(
        heldout_requests(interactions, inputs.min_satisfaction, known), options.users, options.seed
    )
    if not requests:
        raise LogsEvaluationError(
            f"{options.artifacts}: no user has 3 engaged interactions (satisfaction ≥ {inputs.min_satisfaction}), "
            "so there is no held-out transition to evaluate"
        )
    say(f"{len(requests)} held-out transitions (one per user: last engaged context -> next engaged item)")
    arms = LogsArms(
        requests,
        inputs,
        training_log(interactions, requests),
        options.k,
        options.num_clusters,
        options.seed,
        options.bandit_alpha,
    )
    slates = arms.all_slates()
    catalogue_size = len(inputs.catalogue.items)
    per_arm = {name: outcomes(arms, arm_slates) for name, arm_slates in slates.items()}
    results_metrics = {
        name: arm_metrics(result, catalogue_size, options.resamples, options.seed) for name, result in per_arm.items()
    }
    base = [
        inputs.tree.is_serendipitous(r.context_item_id, str(r.heldout_item_id), inputs.level, inputs.delta)
        if r.context_item_id in inputs.tree and r.heldout_item_id in inputs.tree
        else False
        for r in requests
    ]
    base_flags = np.asarray(base, dtype=np.float64)
    base_share = bootstrap(lambda p: float(base_flags[p].mean()), len(base), options.resamples, options.seed)
    heldout_positions = [i for i, r in enumerate(requests) if r.context_item_id in inputs.curation_heldout_contexts]
    subset: dict[str, Any] = {}
    if heldout_positions:
        chosen = np.asarray(heldout_positions)
        for name, result in per_arm.items():
            flags = result.cluster_hit[chosen]
            subset[name] = bootstrap(
                lambda p, f=flags: float(f[p].mean()), len(flags), options.resamples, options.seed
            ).to_dict()
    lines = {
        f"logs_{name}_{metric}": record
        for name, records in results_metrics.items()
        for metric, record in records.items()
    }
    lines["logs_serendipitous_target_share"] = base_share.to_dict()
    return {
        "title": f"held-out transitions of the imported logs in {options.artifacts}",
        "mode": "logs",
        "protocol": (
            f"{len(requests)} held-out transitions, one per user with ≥ 3 engaged interactions (satisfaction ≥ "
            f"{inputs.min_satisfaction}): context = the last engaged item before the target, target = the last engaged "
            f"item, history = the engaged items before the target. Every arm runs in-process on every request "
            f"(no segments, no services), slates of {options.k}, {options.num_clusters} planned cluster(s), planning "
            f"level {inputs.level}, δ = {inputs.delta}; popularity and the FALLBACK / bandit priors come from the logs "
            f"before each target; {options.resamples} bootstrap resamples over requests, seed {options.seed}. Note: "
            f"{TRAINING_NOTE}."
        ),
        "needs_simulator": NEEDS_SIMULATOR,
        "training_note": TRAINING_NOTE,
        "requests": len(requests),
        "catalogue_items": catalogue_size,
        "arms": [{"name": name, "label": arms.labels[name], "requests": len(requests)} for name in slates],
        "skipped_arms": dict(arms.skipped),
        "notes": dict(arms.notes),
        "metrics": results_metrics,
        "serendipitous_target_share": base_share.to_dict(),
        "curation_heldout_contexts": {
            "requests": len(heldout_positions),
            "cluster_hit": subset,
            "note": "requests whose context is in the curation's held-out split (contexts the MLLM never trained on)",
        },
        "lines": lines,
        "inputs": {kind: input_record(path) for kind, path in inputs.paths.items()} | inputs.catalogue.inputs,
        "parameters": {key: str(value) if isinstance(value, Path) else value for key, value in vars(options).items()},
    }
