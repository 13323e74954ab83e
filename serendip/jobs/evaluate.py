"""``python -m serendip.jobs.evaluate``: offline A/B test of the paper's §4 on a world with ground truth, or replay
metrics on your own logs. Writes a report directory (default ``reports/eval/<UTC timestamp>/``)::

    table.md  metrics.json                  per arm: novel impression ratio, positive-feedback ratio, mean
                                            satisfaction, Ge serendipity, cluster unexpectedness, coverage, Gini,
                                            Recall/NDCG@10 on held-out, engagement; 95 % bootstrap intervals;
                                            relative changes over exploitation; paper-shape verdicts
    fig6_novelty_quality.png  fig7_engagement.png  fig8_visual_buckets.png
    logs/                                   requests, impressions, nominations, arms: replayable with --replay
    table.md "Head vs fresh-upload contexts" every arm's positive-feedback ratio, novel impression ratio and
                                            good-cluster share on head and on fresh-upload contexts, as lines
                                            ``name: value [lo, hi]`` (fresh_mllm_pfr, head_bandit_pfr, ...)

Simulation (default): starts tritonserver, the Retriever and the Planner on 127.0.0.1 from ``--artifacts``
(world, tree, curation, sasrec, model_repository; the newest version of each) and calls them for every arm:
exploitation (Retriever UNRESTRICTED on the history), context-similar SASRec (CONTEXT_SIMILAR), the
neural-linear bandit (a sibling cluster of the context by default, then CLUSTER_RESTRICTED), the MLLM treatment
(Planner.Recommend, LIVE), the oracle planner (the true affine cluster; ``--no-oracle-arm`` drops it), with
``--ruled-oracle-arm`` the ceiling of a context-only planner under the Planner's recency rule, and with
``--text-only-mllm`` the text-only MLLM, with ``--rag-mllm`` the keyword-RAG MLLM, each through its own model
repository. One head request per user (the SASRec leave-last-out test case) plus, when the world has fresh
uploads, one fresh-upload request per user (same history, the context an upload newer than every model: each arm
gets what it would have for it, the Planner the upload's frames and title); equal disjoint user segments per
arm, users simulated from the world's ground-truth satisfaction model. The main tables are on head contexts; both
segments are reported apart. See docs/evaluation.md.

Replay: ``--replay LOGS_DIR`` recomputes every metric from logs in the schema of docs/evaluation.md.

Your own logs: when ``--artifacts`` holds an imported catalogue (items.parquet + interactions.parquet at its root, no
``world/``), there is no simulator: every arm that runs without one is scored on each user's held-out transition
(next cluster or item named, serendipitous hit, novelty, coverage; ``serendip.evaluation.logs_eval``), and the
report says which figures need a simulator.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.frames import DEFAULT_NUM_FRAMES
from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact
from serendip.artifacts.store import input_record, read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND, FreshUploads, load_fresh_uploads, load_world
from serendip.core.cli import run_job
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import DataError
from serendip.core.schema import load_items
from serendip.evaluation import metrics
from serendip.evaluation.arms import (
    DEFAULT_TIMEOUT_S,
    BanditArm,
    ContextSimilarArm,
    ExploitationArm,
    OracleArm,
    PlannerArm,
    RuledOracleArm,
    nominate,
    planner_warnings,
    upload_content,
)
from serendip.evaluation.bandit import BanditScope, ClusterBandit
from serendip.evaluation.buckets import (
    DEFAULT_BUCKETS,
    VisualInterestClassifier,
    bucket_gains,
    visual_scores_for,
    world_visual_scores,
)
from serendip.evaluation.logs_eval import LogsEvaluation, evaluate_logs, has_imported_catalogue
from serendip.evaluation.logs_report import console_lines, write_logs_report
from serendip.evaluation.replay import HEAD, ArmSpec, EvaluationLogs, LogsError, replay_metrics
from serendip.evaluation.report import write_report
from serendip.evaluation.segments import segment_summary, summary_line
from serendip.evaluation.simulator import (
    EvaluationRequest,
    Slate,
    WorldUsers,
    affine_serving_clusters,
    fresh_requests,
    heldout_requests,
    oracle_rankings,
    sample_requests,
    simulate,
)
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.stack import ServingStack
from triton_models import build_engines

DEFAULT_REPORTS_ROOT = Path("reports") / "eval"
LOGS_DIR = "logs"
CONTROL = ArmSpec("exploitation", "control", "exploitation (SASRec)")
CONTEXT_SIMILAR = ArmSpec("context_similar", "exploration", "context-similar SASRec")
BANDIT = ArmSpec("bandit", "exploration", "neural-linear bandit")
MLLM = ArmSpec("mllm", "treatment", "MLLM planner")
MLLM_TEXT_ONLY = ArmSpec("mllm_text_only", "treatment", "text-only MLLM planner")
MLLM_RAG = ArmSpec("mllm_rag", "treatment", "keyword-RAG MLLM planner (related keywords in the prompt)")
ORACLE = ArmSpec("oracle", "treatment", "oracle planner (true affine cluster)")
RULED_ORACLE = ArmSpec("oracle_ruled", "treatment", "oracle planner under the recency rule")
ARTIFACT_PROTOCOL = ArmSpec("exploitation_artifact_protocol", "control", "exploitation, SASRec artifact protocol")


@dataclass(frozen=True)
class EvaluateJob:
    """Options of one evaluation: the simulated A/B test on a world (default), or a replay of your logs."""

    artifacts: Path = Path("artifacts")
    """artifact root"""
    report_dir: Path | None = None
    """where to write the report (None: reports/eval/<UTC timestamp>)"""
    text_only_mllm: Path | None = None
    """a text_only mllm artifact: adds the text-only MLLM arm"""
    rag_mllm: Path | None = None
    """a video_cot_rag mllm artifact (MMSRARec's related keywords in the prompt): adds the keyword-RAG MLLM arm"""
    users: int | None = None
    """evaluate a seeded sample of this many users (None: all)"""
    k: int = 10
    """slate size and the @k of Recall/NDCG"""
    num_clusters: int = 1
    """clusters the Planner plans per request"""
    bandit_alpha: float = 0.5
    """LinUCB exploration weight"""
    bandit_scope: BanditScope = "siblings"
    """clusters the bandit may pick: the context's siblings, like the Planner, or novel (any cluster new to the user)"""
    recent_window: int | None = None
    """the Planner and the bandit demote only the clusters of the last N history items (None: the whole history;
    0: none, the recency rule off)"""
    oracle_arm: bool = True
    """the upper-bound arm: the context's true affine cluster (ground truth), then the Planner's retrieval"""
    ruled_oracle_arm: bool = False
    """the ceiling of any context-only planner under the Planner's recency rule: the context's good clusters
    (ground truth) first, the user's history clusters demoted as the Planner does"""
    fresh_segment: bool = True
    """also evaluate every user on a fresh upload (a context newer than every model), reported apart"""
    fresh_world: Path | None = None
    """fresh uploads from this world artifact when the evaluated world has none: the same world regenerated
    (make_world, same parameters; checked byte-identical)"""
    buckets: int = DEFAULT_BUCKETS
    """visual buckets"""
    resamples: int = 1000
    """bootstrap resamples"""
    seed: int = 0
    """segments, simulated responses, bootstrap"""
    concurrency: int = 16
    """requests in flight per arm"""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """deadline of each call"""
    quiet: bool = False
    """no progress bars"""
    replay: Path | None = None
    """replay on your own logs: a logs directory (docs/evaluation.md); replay metrics only"""
    items: Path | None = None
    """replay: items.parquet, the catalogue of coverage/Gini (None: the logged items)"""
    tree: Path | None = None
    """replay: tree artifact or directory; enables cluster unexpectedness"""
    level: int = 3
    """replay, and your logs without a curation: planning level of the tree"""
    visual_labels: Path | None = None
    """replay: item_id, label (1 = visually interesting) parquet: trains the Fig. 8 classifier (needs --items)"""

    def __post_init__(self) -> None:
        if self.recent_window is not None and self.recent_window < 0:
            raise ValueError(f"--recent-window must be >= 0, not {self.recent_window}")


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, flush=True)


def training_transitions(interactions: pd.DataFrame, requests: list[EvaluationRequest]) -> pd.DataFrame:
    """Logged transitions (context -> next item) before each evaluated user's held-out interaction."""
    targets = pd.DataFrame(
        {"user_id": [r.user_id for r in requests], "heldout_item_id": [r.heldout_item_id for r in requests]}
    )
    held = interactions.merge(targets, left_on=["user_id", "item_id"], right_on=["user_id", "heldout_item_id"])
    cutoff = held.groupby("user_id")["ts"].max()
    frame = interactions.dropna(subset=["context_item_id"])
    limit = frame["user_id"].map(cutoff)
    return frame[limit.isna() | (frame["ts"] < limit)]


NO_FRESH_UPLOADS = (
    "world {world} has no fresh uploads (generated before they existed), so there is no fresh-upload segment. "
    "Regenerate it with the same parameters (python -m serendip.jobs.make_world --artifacts DIR ...: the logged "
    "world comes out byte-identical) and pass --fresh-world DIR/world, or rebuild the artifacts (make data)."
)
WORLD_TABLES = ("items.parquet", "interactions.parquet", "users.parquet", "ground_truth.parquet")


def fresh_uploads_for(world_dir: Path, fresh_world: Path | None) -> FreshUploads | None:
    """The evaluated world's fresh uploads, or those of ``fresh_world`` after checking that its logged world is
    byte-identical to the evaluated one (same manifest hashes of every logged table)."""
    if fresh_world is None:
        return load_fresh_uploads(world_dir)
    other = resolve_artifact(fresh_world, WORLD_KIND)
    mine, theirs = read_manifest(world_dir)["files"], read_manifest(other)["files"]
    different = [name for name in WORLD_TABLES if mine[name]["sha256"] != theirs.get(name, {}).get("sha256")]
    if different:
        raise SystemExit(
            f"--fresh-world {other} is not the evaluated world {world_dir.name} regenerated: {', '.join(different)} "
            "differ (generate it with the evaluated world's parameters)"
        )
    fresh = load_fresh_uploads(other)
    if fresh is None:
        raise SystemExit(f"--fresh-world {other} has no fresh uploads either")
    return fresh


def _upload_contents(fresh: FreshUploads, requests: list[EvaluationRequest], num_frames: int) -> dict[str, Any]:
    """item -> the context_content an upload client would send, for the uploads the requests use."""
    rows = fresh.items.set_index("item_id")

    def path(item: str, column: str) -> str | None:
        value = rows.at[item, column] if column in rows else None
        return value if isinstance(value, str) and value else None

    return {
        item: upload_content(path(item, "video_path"), path(item, "thumbnail_path"), rows.at[item, "title"], num_frames)
        for item in sorted({request.context_item_id for request in requests})
    }


def _arm_slates(
    arms: list,
    requests: list[EvaluationRequest],
    job: EvaluateJob,
    warnings: dict[str, dict[str, int]],
    fresh: list[EvaluationRequest] | None = None,
) -> dict[str, list[Slate]]:
    """Every arm's slates for ``requests`` then ``fresh`` (in that order); the fresh requests run after the head
    ones, so the head requests are served exactly as in a run without them (same load, nothing planned yet)."""
    slates = {}
    for arm in arms:
        with planner_warnings() as counts:
            slates[arm.spec.name] = [
                slate
                for group in (requests, fresh or [])
                if group
                for slate in nominate(arm, group, job.k, job.concurrency, job.timeout_s, not job.quiet)
            ]
        if counts:
            warnings[arm.spec.name] = dict(counts)
    return slates


def _all_requests_recall(
    requests: list[EvaluationRequest], slates: dict[str, list[Slate]], k: int
) -> dict[str, dict[str, float]]:
    targets = [r.heldout_item_id for r in requests]
    return {
        arm: {
            f"recall@{k}": round(metrics.recall_at_k([s.item_ids for s in arm_slates], targets, k), 6),
            f"ndcg@{k}": round(metrics.ndcg_at_k([s.item_ids for s in arm_slates], targets, k), 6),
        }
        for arm, arm_slates in slates.items()
    }


def simulate_report(job: EvaluateJob, report_dir: Path) -> dict[str, Any]:
    """Run every arm through the services on the world's held-out requests, simulate users, compute metrics."""
    root = job.artifacts
    bundle = resolve_bundle(root, with_plans=False)
    paths = {
        WORLD_KIND: bundle.catalogue,
        TREE_KIND: bundle.tree,
        CURATION_KIND: bundle.curation,
        SASREC_KIND: bundle.sasrec,
        REPOSITORY_KIND: bundle.repository,
    }
    _say("inputs: " + ", ".join(f"{kind} {path.name}" for kind, path in paths.items()), job.quiet)
    world = load_world(paths[WORLD_KIND])
    tree = ClusterTree.load(paths[TREE_KIND])
    level = int(read_manifest(paths[CURATION_KIND])["parameters"]["level"])
    sasrec = SASRecArtifact.load(paths[SASREC_KIND])
    min_satisfaction = float(read_manifest(paths[SASREC_KIND])["parameters"]["min_satisfaction"])
    requests = heldout_requests(world.interactions, min_satisfaction, sasrec.vocabulary.item_ids)
    requests = sample_requests(requests, job.users, job.seed)
    _say(f"{len(requests)} requests (one per user, SASRec leave-last-out test case)", job.quiet)
    fresh = fresh_uploads_for(paths[WORLD_KIND], job.fresh_world) if job.fresh_segment else None
    fresh_note = None
    if job.fresh_segment and fresh is None:
        fresh_note = NO_FRESH_UPLOADS.format(world=paths[WORLD_KIND].name)
        _say(f"NOTE: {fresh_note}", job.quiet)
    fresh_truth = fresh.ground_truth if fresh is not None else None
    extra = fresh_requests(requests, world.ground_truth, fresh_truth, job.seed) if fresh_truth is not None else []
    if extra:
        _say(f"+ {len(extra)} fresh-upload requests ({len(set(r.context_item_id for r in extra))} uploads)", job.quiet)
    visual = PlannerSpec.load(bundle.mllm).visual
    num_frames = visual.frames if visual is not None and not visual.thumbnail else DEFAULT_NUM_FRAMES
    content_of = _upload_contents(fresh, extra, num_frames) if fresh is not None and extra else {}
    all_requests = requests + extra

    embeddings = {item: sasrec.item_embeddings[sasrec.vocabulary.index(item)] for item in sasrec.vocabulary.item_ids}
    delta = int(read_manifest(paths[CURATION_KIND])["parameters"]["delta"])
    bandit = ClusterBandit(tree, level, embeddings, job.bandit_alpha, job.bandit_scope, delta, job.recent_window)
    warm = bandit.warm_start(training_transitions(world.interactions, requests))
    _say(f"bandit warm-started on {warm} logged cluster-changing transitions", job.quiet)

    scope_label = {"novel": "novel clusters", "siblings": "sibling clusters"}[job.bandit_scope]
    bandit_spec = ArmSpec(BANDIT.name, BANDIT.role, f"{BANDIT.label} ({scope_label})")
    extra_mllms = [(spec, path) for spec, path in ((MLLM_TEXT_ONLY, job.text_only_mllm), (MLLM_RAG, job.rag_mllm))]
    extra_mllms = [(spec, path) for spec, path in extra_mllms if path is not None]
    specs = [CONTROL, CONTEXT_SIMILAR, bandit_spec, MLLM] + [spec for spec, _ in extra_mllms]
    specs += [ORACLE] if job.oracle_arm else []
    specs += [RULED_ORACLE] if job.ruled_oracle_arm else []
    known = set(sasrec.vocabulary.item_ids)
    planner_warning_counts: dict[str, dict[str, int]] = {}
    _say("starting tritonserver, Retriever and Planner on 127.0.0.1 ...", job.quiet)
    with ServingStack(
        bundle,
        plans=False,
        nearline=False,
        live_max_in_flight=job.concurrency,
        recent_window=job.recent_window,
        work_dir=report_dir,
    ) as stack:
        arms = [
            ExploitationArm(CONTROL, stack.retriever_address),
            ContextSimilarArm(CONTEXT_SIMILAR, stack.retriever_address, known),
            BanditArm(bandit_spec, stack.retriever_address, bandit),
            PlannerArm(MLLM, stack.planner_address, job.num_clusters, content_of),
        ]
        if job.oracle_arm:
            affine = affine_serving_clusters(world, tree, level, fresh_truth)
            arms.append(OracleArm(ORACLE, stack.retriever_address, affine))
        if job.ruled_oracle_arm:
            rankings = oracle_rankings(world, tree, level, delta, fresh_truth)
            arms.append(RuledOracleArm(RULED_ORACLE, stack.retriever_address, rankings, tree, level, job.recent_window))
        slates = _arm_slates(arms, requests, job, planner_warning_counts, extra)
        check = ExploitationArm(ARTIFACT_PROTOCOL, stack.retriever_address, target_reachable=True)
        protocol_check = _arm_slates([check], requests, job, planner_warning_counts)
    inputs = {kind: input_record(path) for kind, path in paths.items()}
    for extra_spec, extra_path in extra_mllms:
        extra_mllm = resolve_artifact(extra_path, MLLM_KIND)
        inputs[extra_spec.name] = input_record(extra_mllm)
        scratch = Path(tempfile.mkdtemp(prefix=f"eval-{extra_spec.name}-"))
        try:
            _say(f"building a model repository for the {extra_spec.label} ...", job.quiet)
            repository = build_engines.build_repository(
                build_engines.BuildEnginesJob(artifacts=scratch, mllm=extra_mllm, sasrec=paths[SASREC_KIND])
            )
            extra_bundle = resolve_bundle(root, repository, with_plans=False)
            with ServingStack(
                extra_bundle,
                plans=False,
                nearline=False,
                live_max_in_flight=job.concurrency,
                recent_window=job.recent_window,
                work_dir=report_dir / extra_spec.name,
            ) as stack:
                arm = PlannerArm(extra_spec, stack.planner_address, job.num_clusters, content_of)
                slates.update(_arm_slates([arm], requests, job, planner_warning_counts, extra))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    visual_scores = world_visual_scores(world.ground_truth)
    logs = simulate(specs, all_requests, slates, WorldUsers(world, fresh_truth), job.seed, visual_scores)
    logs.save(report_dir / LOGS_DIR)
    _say(f"simulated {len(logs.impressions)} impressions; computing metrics ...", job.quiet)
    results = _metrics(logs, set(sasrec.vocabulary.item_ids), tree, level, job)
    sasrec_metrics = json.loads((paths[SASREC_KIND] / "metrics.json").read_text()).get("sasrec", {})
    results["inputs"] = inputs
    if fresh_note:
        results["segments"]["note"] = fresh_note
    head_slates = {arm: arm_slates[: len(requests)] for arm, arm_slates in slates.items()}
    for arm, counts in planner_warning_counts.items():
        results["diagnostics"][arm]["planner_warnings"] = counts
    repeats = sum(r.heldout_item_id in r.history for r in requests) / max(len(requests), 1)
    results["sanity"] = {
        "all_requests_accuracy": _all_requests_recall(requests, head_slates, job.k),
        "exploitation_with_artifact_protocol": _all_requests_recall(requests, protocol_check, job.k)[
            ARTIFACT_PROTOCOL.name
        ],
        "sasrec_artifact_test_metrics": sasrec_metrics,
        "heldout_target_in_history_share": round(repeats, 6),
        "note": "every arm excludes the history (no re-recommendation), so a held-out target the user had already "
        "consumed cannot be hit; with only the history minus the target excluded (the SASRec artifact's "
        "protocol), exploitation through the services must reproduce the artifact's test metrics",
    }
    results["protocol"] = (
        f"Simulated offline A/B on world {paths['world'].name}: {len(requests)} users with a SASRec leave-last-out "
        f"test case, {len(specs)} equal disjoint segments ({results['arms'][0]['users']} users each), one request per "
        f"user (context = last positive item before the held-out one), slates of {job.k}; Planner plans "
        f"{job.num_clusters} cluster(s) LIVE (no plan table); users respond from the world's satisfaction model "
        f"(s = clip(μ + N(0, σ²)), positive with probability s); seed {job.seed}, {job.resamples} bootstrap "
        "resamples. All arms called through the real services on loopback (Triton + Retriever + Planner). "
        + (
            f"Fresh-upload segment: the same users each watching one of {len(content_of)} uploads created after the "
            "logs end (no log, tree node, SASRec embedding or plan): context-similar SASRec serves the cold-start "
            "popular items, the bandit content-free features (its clusters' prior), the Planner the upload's "
            f"{num_frames} frames, thumbnail and title as context_content. Tables below: head contexts."
            if extra
            else "No fresh-upload segment."
        )
    )
    results["title"] = f"simulated, world {paths['world'].name}"
    return results


def _metrics(
    logs: EvaluationLogs, catalog: set[str] | None, tree: ClusterTree | None, level: int, job: EvaluateJob
) -> dict[str, Any]:
    segments = segment_summary(logs, job.k, job.resamples, job.seed)
    logs = logs.segment(HEAD)  # the main tables: head contexts (every request when the logs have no segments)
    results = replay_metrics(logs, catalog, tree, level, job.k, job.resamples, job.seed)
    results["segments"] = segments
    baselines = [arm.name for arm in logs.arms if arm.role != "treatment"]
    has_scores = "visual_score" in logs.requests and logs.requests["visual_score"].notna().any()
    results["buckets"] = (
        [
            bucket_gains(logs, arm.name, baselines, job.buckets, job.resamples, job.seed)
            for arm in logs.arms
            if arm.role == "treatment"
        ]
        if has_scores
        else []
    )
    results["k"] = job.k
    results["parameters"] = {
        key: str(value) if isinstance(value, Path) else value for key, value in asdict(job).items()
    }
    return results


def replay_report(job: EvaluateJob) -> dict[str, Any]:
    """Replay metrics on a logs directory."""
    logs = EvaluationLogs.load(job.replay)
    items = load_items(job.items)[0] if job.items else None
    catalog = set(items["item_id"]) if items is not None else None
    tree = ClusterTree.load(resolve_artifact(job.tree, TREE_KIND)) if job.tree else None
    if job.visual_labels:
        if items is None or "video_path" not in items:
            raise SystemExit("--visual-labels needs --items with a video_path column")
        labels = pd.read_parquet(job.visual_labels).merge(items[["item_id", "video_path"]], on="item_id")
        classifier = VisualInterestClassifier(seed=job.seed)
        classifier.fit(classifier.video_features(labels["video_path"].tolist()), labels["label"].tolist())
        contexts = items[items["item_id"].isin(set(logs.requests["context_item_id"]))].dropna(subset=["video_path"])
        scores = dict(
            zip(
                contexts["item_id"],
                classifier.score(classifier.video_features(contexts["video_path"].tolist())),
                strict=True,
            )
        )
        logs.requests = logs.requests.assign(visual_score=visual_scores_for(logs.requests, scores).to_numpy(np.float64))
    results = _metrics(logs, catalog, tree, job.level, job)
    results["protocol"] = (
        f"Replay of logs in {job.replay} ({len(logs.requests)} requests, {len(logs.impressions)} impressions)."
    )
    results["title"] = f"replay of {job.replay}"
    return results


def logs_report(job: EvaluateJob, report_dir: Path) -> Path:
    """The evaluation of an imported catalogue's own logs (no world, so no simulator); returns the report dir."""
    _say(
        f"{job.artifacts} holds an imported catalogue and no world: evaluating on your logs' held-out transitions",
        job.quiet,
    )
    options = LogsEvaluation(
        artifacts=job.artifacts,
        users=job.users,
        k=job.k,
        num_clusters=job.num_clusters,
        level=job.level,
        bandit_alpha=job.bandit_alpha,
        resamples=job.resamples,
        seed=job.seed,
    )
    results = evaluate_logs(options, lambda text: _say(text, job.quiet))
    written = write_logs_report(report_dir, results)
    for line in console_lines(results):
        _say(line, job.quiet)
    _say(f"report: {report_dir} ({', '.join(path.name for path in written)})", job.quiet)
    return report_dir


def run(job: EvaluateJob) -> Path:
    """Evaluate and write the report directory; returns it."""
    # SIGTERM unwinds like Ctrl-C, so the with-blocks stop tritonserver and the services.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report_dir = job.report_dir or DEFAULT_REPORTS_ROOT / stamp
    report_dir.mkdir(parents=True, exist_ok=True)
    if job.replay is None and has_imported_catalogue(job.artifacts):
        return logs_report(job, report_dir)
    results = replay_report(job) if job.replay else simulate_report(job, report_dir)
    written = write_report(report_dir, results)
    written_results = json.loads((report_dir / "metrics.json").read_text())
    for statement in written_results["paper_shape"]["statements"]:
        _say(statement, job.quiet)
    for name, record in written_results.get("segments", {}).get("lines", {}).items():
        _say(summary_line(name, record), job.quiet)
    _say(f"report: {report_dir} ({', '.join(path.name for path in written)})", job.quiet)
    return report_dir


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line; a data or log error ends as one line naming it."""
    return run_job(run, EvaluateJob, argv, __doc__, "python -m serendip.jobs.evaluate", (DataError, LogsError))


if __name__ == "__main__":
    main()
