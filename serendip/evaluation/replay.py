"""Replay metrics on logs: the simulator's, or your own A/B logs in the same schema.

A log directory holds:

``arms.json``            ``[{"name", "role", "label"}]``; role is ``control`` (the exploitation model, reference
                         of the relative changes and the primitive model of serendipity), ``exploration`` or
                         ``treatment``; the first treatment is the primary one.
``requests.parquet``     request_id, user_id, arm (the segment's arm), context_item_id, history (list of item
                         ids, oldest first), optional heldout_item_id (Recall/NDCG), optional visual_score
                         (Fig. 8 buckets), optional segment (``head``: a catalogue context, the default;
                         ``fresh``: an upload newer than every model -- reported apart, see ``segments.py``)
``impressions.parquet``  request_id, arm, item_id, position, positive (bool), optional satisfaction in [0, 1],
                         optional relation, planned_clusters, plan_source (diagnostics)
``nominations.parquet``  optional: request_id, arm, item_id, position — every arm's slate for every request
                         (production: the candidates each source nominated). Without it the novel impression
                         ratio and serendipity are judged at catalogue level: against every item the other arms
                         showed anywhere.

The novel impression ratio of an arm compares it with the *production pool* it would join: a treatment against
the non-treatment arms; a non-treatment arm against the other non-treatment arms plus the primary treatment
(treatments are alternatives, never served side by side). Confidence intervals: percentile bootstrap over users.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serendip.core.cluster_tree import ClusterTree
from serendip.evaluation import metrics
from serendip.evaluation.confidence import Estimate, bootstrap, bootstrap_ratio

ARMS_FILE = "arms.json"
REQUESTS_FILE = "requests.parquet"
IMPRESSIONS_FILE = "impressions.parquet"
NOMINATIONS_FILE = "nominations.parquet"
ROLES = ("control", "exploration", "treatment")
REQUEST_COLUMNS = ("request_id", "user_id", "arm", "context_item_id", "history")
IMPRESSION_COLUMNS = ("request_id", "arm", "item_id", "position", "positive")
NOMINATION_COLUMNS = ("request_id", "arm", "item_id", "position")
SEGMENT_COLUMN = "segment"
HEAD, FRESH = "head", "fresh"
"""Request segments: contexts from the catalogue the models were trained on, and fresh uploads (cold start)."""
GOOD_RELATIONS = ("affine", "secondary")
"""Simulated logs: relations of an item in one of the context's good (affine) clusters."""


class LogsError(ValueError):
    """Logs that do not follow the schema (missing file or column, unknown arm or role)."""


@dataclass(frozen=True)
class ArmSpec:
    """One arm of the experiment."""

    name: str
    role: str
    label: str


@dataclass
class EvaluationLogs:
    """Requests, served impressions with feedback, and (optionally) every arm's nominations."""

    arms: list[ArmSpec]
    requests: pd.DataFrame
    impressions: pd.DataFrame
    nominations: pd.DataFrame | None = None

    def save(self, directory: Path) -> None:
        """Write the four files of the schema into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ARMS_FILE).write_text(json.dumps([asdict(arm) for arm in self.arms], indent=2) + "\n")
        self.requests.to_parquet(directory / REQUESTS_FILE, index=False)
        self.impressions.to_parquet(directory / IMPRESSIONS_FILE, index=False)
        if self.nominations is not None:
            self.nominations.to_parquet(directory / NOMINATIONS_FILE, index=False)

    @classmethod
    def load(cls, directory: Path) -> EvaluationLogs:
        """Read and check a log directory (see the module docstring)."""
        directory = Path(directory)
        for name in (ARMS_FILE, REQUESTS_FILE, IMPRESSIONS_FILE):
            if not (directory / name).is_file():
                raise LogsError(f"{directory / name} is missing")
        arms = [ArmSpec(**record) for record in json.loads((directory / ARMS_FILE).read_text())]
        nominations_path = directory / NOMINATIONS_FILE
        logs = cls(
            arms=arms,
            requests=pd.read_parquet(directory / REQUESTS_FILE),
            impressions=pd.read_parquet(directory / IMPRESSIONS_FILE),
            nominations=pd.read_parquet(nominations_path) if nominations_path.is_file() else None,
        )
        logs.validate()
        return logs

    def validate(self) -> None:
        """Raise LogsError naming the first schema problem."""
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names) or not names:
            raise LogsError(f"arms.json: arm names must be unique and non-empty, got {names}")
        for arm in self.arms:
            if arm.role not in ROLES:
                raise LogsError(f"arms.json: arm {arm.name!r} has role {arm.role!r}, expected one of {ROLES}")
        if sum(arm.role == "control" for arm in self.arms) != 1:
            raise LogsError("arms.json: exactly one arm must have the role 'control'")
        tables = [("requests", self.requests, REQUEST_COLUMNS), ("impressions", self.impressions, IMPRESSION_COLUMNS)]
        if self.nominations is not None:
            tables.append(("nominations", self.nominations, NOMINATION_COLUMNS))
        for table_name, table, columns in tables:
            missing = [column for column in columns if column not in table.columns]
            if missing:
                raise LogsError(f"{table_name}: missing column(s) {missing}")
            unknown = sorted(set(table["arm"]) - set(names))
            if unknown:
                raise LogsError(f"{table_name}: arm(s) {unknown} are not in arms.json")

    def segment_names(self) -> list[str]:
        """The request segments present, head first (every request is ``head`` without a segment column)."""
        if SEGMENT_COLUMN not in self.requests.columns:
            return [HEAD]
        present = set(self.requests[SEGMENT_COLUMN].fillna(HEAD))
        return [name for name in (HEAD, FRESH) if name in present] + sorted(present - {HEAD, FRESH})

    def segment(self, name: str) -> EvaluationLogs:
        """The logs of one request segment (all logs when there is no segment column and ``name`` is head)."""
        if SEGMENT_COLUMN not in self.requests.columns:
            return self if name == HEAD else self.segment_of([])
        return self.segment_of(self.requests.loc[self.requests[SEGMENT_COLUMN].fillna(HEAD) == name, "request_id"])

    def segment_of(self, request_ids: Collection[str]) -> EvaluationLogs:
        """The logs of these requests only."""
        chosen = set(request_ids)

        def keep(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["request_id"].isin(chosen)].reset_index(drop=True)

        nominations = keep(self.nominations) if self.nominations is not None else None
        return EvaluationLogs(list(self.arms), keep(self.requests), keep(self.impressions), nominations)

    @property
    def control(self) -> ArmSpec:
        """The exploitation arm."""
        return next(arm for arm in self.arms if arm.role == "control")

    @property
    def primary_treatment(self) -> ArmSpec | None:
        """The first treatment arm, if any."""
        return next((arm for arm in self.arms if arm.role == "treatment"), None)

    def competitors(self, arm: ArmSpec) -> list[str]:
        """Arms whose recommendations make an impression of ``arm`` not novel (its production pool)."""
        pool = [other.name for other in self.arms if other.role != "treatment" and other.name != arm.name]
        primary = self.primary_treatment
        if arm.role != "treatment" and primary is not None:
            pool.append(primary.name)
        return pool


@dataclass
class ArmData:
    """One arm's segment, one entry per request (ordered as its requests), plus per-user request positions."""

    slates: list[list[str]]
    positive: list[list[bool]]
    satisfaction: list[list[float]] | None
    competitor_items: list[Collection[str]]
    primitive_items: list[Collection[str]]
    slate_clusters: list[list[str]] | None
    history_clusters: list[set[str]] | None
    targets: list[str] | None
    requests_of_user: list[np.ndarray]
    relations: list[list[str]] | None = None
    """Ground-truth relation of each impression to the context (simulated logs), else None."""

    def select(self, users: np.ndarray) -> np.ndarray:
        """Request positions of the chosen users (a bootstrap resample may repeat users)."""
        return np.concatenate([self.requests_of_user[u] for u in users]) if len(users) else np.empty(0, np.int64)


def _slates(frame: pd.DataFrame) -> dict[str, list[str]]:
    ordered = frame.sort_values(["request_id", "position"], kind="stable")
    return {request: list(items) for request, items in ordered.groupby("request_id", sort=False)["item_id"]}


def _items_by_request(frame: pd.DataFrame | None, arms: Sequence[str]) -> dict[str, set[str]]:
    if frame is None or not arms:
        return {}
    chosen = frame[frame["arm"].isin(arms)]
    return {request: set(items) for request, items in chosen.groupby("request_id", sort=False)["item_id"]}


def arm_data(logs: EvaluationLogs, arm: ArmSpec, tree: ClusterTree | None, level: int) -> ArmData:
    """Gather ``arm``'s segment from ``logs`` in the shapes the metric functions take."""
    requests = logs.requests[logs.requests["arm"] == arm.name].reset_index(drop=True)
    impressions = logs.impressions[logs.impressions["arm"] == arm.name]
    ordered = impressions.sort_values(["request_id", "position"], kind="stable")
    grouped = {request: rows for request, rows in ordered.groupby("request_id", sort=False)}
    empty = ordered.iloc[0:0]
    rows = [grouped.get(request, empty) for request in requests["request_id"]]
    competitors = logs.competitors(arm)
    control = logs.control.name
    if logs.nominations is not None:
        competitor_by_request = _items_by_request(logs.nominations, competitors)
        primitive_by_request = _items_by_request(logs.nominations, [control])
        competitor_items = [competitor_by_request.get(r, set()) for r in requests["request_id"]]
        primitive_items = [primitive_by_request.get(r, set()) for r in requests["request_id"]]
    else:
        competitor_catalogue = set(logs.impressions.loc[logs.impressions["arm"].isin(competitors), "item_id"])
        primitive_catalogue = set(logs.impressions.loc[logs.impressions["arm"] == control, "item_id"])
        competitor_items = [competitor_catalogue] * len(requests)
        primitive_items = [primitive_catalogue] * len(requests)
    slates = [list(frame["item_id"]) for frame in rows]
    has_satisfaction = "satisfaction" in impressions.columns and impressions["satisfaction"].notna().all()
    slate_clusters = history_clusters = None
    if tree is not None:

        def cluster(item: str) -> str:
            return tree.node_of(item, level) if item in tree else f"unknown:{item}"

        slate_clusters = [[cluster(item) for item in slate] for slate in slates]
        history_clusters = [
            {cluster(item) for item in [*history, context]}
            for history, context in zip(requests["history"], requests["context_item_id"], strict=True)
        ]
    has_relations = "relation" in impressions.columns and impressions["relation"].notna().all()
    has_targets = "heldout_item_id" in requests.columns and requests["heldout_item_id"].notna().all()
    users = pd.factorize(requests["user_id"])[0]
    return ArmData(
        slates=slates,
        positive=[[bool(p) for p in frame["positive"]] for frame in rows],
        satisfaction=[list(frame["satisfaction"].astype(float)) for frame in rows] if has_satisfaction else None,
        competitor_items=competitor_items,
        primitive_items=primitive_items,
        slate_clusters=slate_clusters,
        history_clusters=history_clusters,
        targets=list(requests["heldout_item_id"]) if has_targets else None,
        requests_of_user=[np.flatnonzero(users == u) for u in range(users.max() + 1 if len(users) else 0)],
        relations=[[str(r) for r in frame["relation"]] for frame in rows] if has_relations else None,
    )


MetricFunction = Callable[[ArmData, np.ndarray], float]


def _pick(values: list | None, positions: np.ndarray) -> list:
    return [values[i] for i in positions] if values is not None else []


def _engaged_users(data: ArmData, users: np.ndarray, min_positive: int) -> float:
    if len(users) == 0:
        return math.nan
    return float(np.mean([sum(sum(data.positive[i]) for i in data.requests_of_user[u]) >= min_positive for u in users]))


def _engaged_pairs_per_user(data: ArmData, users: np.ndarray) -> float:
    if len(users) == 0:
        return math.nan
    pairs = 0
    for u in users:
        positions = data.requests_of_user[u]
        pairs += len({item for i in positions for item, p in zip(data.slates[i], data.positive[i], strict=True) if p})
    return pairs / len(users)


def metric_functions(catalog: Collection[str], k: int, engaged_min_positive: int) -> dict[str, MetricFunction]:
    """name -> statistic of an arm's segment given resampled user indices (NaN when the logs lack its input)."""
    catalog_size = len(catalog)

    def per_request(function: Callable[[ArmData, np.ndarray], float]) -> MetricFunction:
        return lambda data, users: function(data, data.select(users))

    def satisfaction(data: ArmData, positions: np.ndarray) -> float:
        return metrics.mean_satisfaction(_pick(data.satisfaction, positions)) if data.satisfaction else math.nan

    def unexpectedness(data: ArmData, positions: np.ndarray) -> float:
        if data.slate_clusters is None:
            return math.nan
        return metrics.cluster_unexpectedness(
            _pick(data.slate_clusters, positions), _pick(data.history_clusters, positions)
        )

    def recall(data: ArmData, positions: np.ndarray) -> float:
        return (
            metrics.recall_at_k(_pick(data.slates, positions), _pick(data.targets, positions), k)
            if data.targets
            else math.nan
        )

    def ndcg(data: ArmData, positions: np.ndarray) -> float:
        return (
            metrics.ndcg_at_k(_pick(data.slates, positions), _pick(data.targets, positions), k)
            if data.targets
            else math.nan
        )

    def good_share(data: ArmData, positions: np.ndarray) -> float:
        return (
            metrics.good_cluster_share(_pick(data.relations, positions), GOOD_RELATIONS)
            if data.relations is not None
            else math.nan
        )

    def engaged_items(data: ArmData, positions: np.ndarray) -> float:
        engaged = [[item for item, p in zip(data.slates[i], data.positive[i], strict=True) if p] for i in positions]
        return metrics.catalog_coverage(engaged, catalog_size)

    return {
        "novel_impression_ratio": per_request(
            lambda d, p: metrics.novel_impression_ratio(_pick(d.slates, p), _pick(d.competitor_items, p))
        ),
        "positive_feedback_ratio": per_request(lambda d, p: metrics.positive_feedback_ratio(_pick(d.positive, p))),
        "mean_satisfaction": per_request(satisfaction),
        "good_cluster_share": per_request(good_share),
        "serendipity": per_request(
            lambda d, p: metrics.ge_serendipity(_pick(d.slates, p), _pick(d.primitive_items, p), _pick(d.positive, p))
        ),
        "cluster_unexpectedness": per_request(unexpectedness),
        "coverage": per_request(lambda d, p: metrics.catalog_coverage(_pick(d.slates, p), catalog_size)),
        "gini": per_request(lambda d, p: metrics.gini_index(_pick(d.slates, p), catalog)),
        f"recall@{k}": per_request(recall),
        f"ndcg@{k}": per_request(ndcg),
        "engaged_users": lambda d, users: _engaged_users(d, users, engaged_min_positive),
        "engaged_pairs_per_user": _engaged_pairs_per_user,
        "engaged_item_coverage": per_request(engaged_items),
    }


RELATIVE_METRICS = (
    "novel_impression_ratio",
    "positive_feedback_ratio",
    "mean_satisfaction",
    "engaged_users",
    "engaged_pairs_per_user",
    "engaged_item_coverage",
)
"""Metrics also reported as relative change over the control arm (paper Figs 6 and 7)."""


def _shares(values: pd.Series) -> dict[str, float]:
    return {str(key): round(float(share), 6) for key, share in values.value_counts(normalize=True).sort_index().items()}


def replay_metrics(
    logs: EvaluationLogs,
    catalog: Collection[str] | None = None,
    tree: ClusterTree | None = None,
    level: int = 3,
    k: int = 10,
    resamples: int = 1000,
    seed: int = 0,
    engaged_min_positive: int | None = None,
) -> dict[str, Any]:
    """Every metric per arm with a 95 % bootstrap interval, relative changes over control, and diagnostics.

    ``catalog`` defaults to every item in the logs; ``tree`` (with ``level``) enables cluster unexpectedness;
    a user is *engaged* with at least ``engaged_min_positive`` positive impressions (default ⌈k/2⌉).
    """
    logs.validate()
    if catalog is None:
        frames = [logs.impressions["item_id"], logs.requests["context_item_id"]]
        if logs.nominations is not None:
            frames.append(logs.nominations["item_id"])
        catalog = set(pd.concat(frames))
    catalog = set(catalog)
    functions = metric_functions(catalog, k, engaged_min_positive or math.ceil(k / 2))
    data = {arm.name: arm_data(logs, arm, tree, level) for arm in logs.arms}
    control = logs.control.name
    result: dict[str, Any] = {"arms": [], "metrics": {}, "relative_to_control": {}, "diagnostics": {}}
    for arm_number, arm in enumerate(logs.arms):
        arm_seed = seed + 1000 * arm_number
        segment = data[arm.name]
        users = len(segment.requests_of_user)
        result["arms"].append(
            {
                **asdict(arm),
                "users": users,
                "requests": len(segment.slates),
                "impressions": sum(len(s) for s in segment.slates),
            }
        )
        result["metrics"][arm.name] = {
            name: bootstrap(partial(function, segment), users, resamples, arm_seed).to_dict()
            for name, function in functions.items()
        }
        if arm.name != control:
            reference = data[control]
            result["relative_to_control"][arm.name] = {
                name: bootstrap_ratio(
                    partial(functions[name], segment),
                    users,
                    partial(functions[name], reference),
                    len(reference.requests_of_user),
                    resamples,
                    arm_seed + 1,
                ).to_dict()
                for name in RELATIVE_METRICS
            }
        impressions = logs.impressions[logs.impressions["arm"] == arm.name]
        diagnostics: dict[str, Any] = {}
        if "relation" in impressions.columns and len(impressions):
            diagnostics["relation_shares"] = _shares(impressions["relation"])
        if "plan_source" in impressions.columns and impressions["plan_source"].astype(bool).any():
            per_request = impressions.drop_duplicates("request_id")
            diagnostics["plan_source_shares"] = _shares(per_request["plan_source"])
        result["diagnostics"][arm.name] = diagnostics
    if logs.nominations is not None:
        result["overlap"] = nomination_overlap(logs)
    return result


def nomination_overlap(logs: EvaluationLogs) -> dict[str, dict[str, float]]:
    """overlap[a][b]: share of a's nominated items that b also nominates for the same request, over every
    request (1 − the novel impression ratio of a against b alone)."""
    slates = {arm.name: _slates(logs.nominations[logs.nominations["arm"] == arm.name]) for arm in logs.arms}
    overlap: dict[str, dict[str, float]] = {}
    for arm, own in slates.items():
        requests = list(own)
        overlap[arm] = {
            other: round(
                1
                - metrics.novel_impression_ratio(
                    [own[r] for r in requests], [set(others.get(r, ())) for r in requests]
                ),
                6,
            )
            for other, others in slates.items()
            if other != arm
        }
    return overlap


def estimate(record: dict[str, float | None]) -> Estimate:
    """An Estimate back from its ``to_dict`` form (None -> NaN)."""
    return Estimate(*(math.nan if record[name] is None else float(record[name]) for name in ("value", "low", "high")))
