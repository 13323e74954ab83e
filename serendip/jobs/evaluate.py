"""``python -m serendip.jobs.evaluate``: offline A/B test of the paper's §4 on a world with ground truth, or replay
metrics on your own logs. Writes a report directory (default ``reports/eval/<UTC timestamp>/``)::

    table.md  metrics.json                  per arm: novel impression ratio, positive-feedback ratio, mean
                                            satisfaction, Ge serendipity, cluster unexpectedness, coverage, Gini,
                                            Recall/NDCG@10 on held-out, engagement; 95 % bootstrap intervals;
                                            relative changes over exploitation; paper-shape verdicts
    fig6_novelty_quality.png  fig7_engagement.png  fig8_visual_buckets.png
    logs/                                   requests, impressions, nominations, arms: replayable with --replay

Simulation (default): starts tritonserver, the Retriever and the Planner on 127.0.0.1 from ``--artifacts``
(world, tree, curation, sasrec, model_repository; the newest version of each) and calls them for every arm:
exploitation (Retriever UNRESTRICTED on the history), context-similar SASRec (CONTEXT_SIMILAR), the
neural-linear bandit (novel cluster, then CLUSTER_RESTRICTED), the MLLM treatment (Planner.Recommend, LIVE),
and with ``--text-only-mllm`` the text-only MLLM through a second model repository. One request per user (the
SASRec leave-last-out test case), equal disjoint user segments per arm, users simulated from the world's
ground-truth satisfaction model. See docs/evaluation.md.

Replay: ``--replay LOGS_DIR`` recomputes every metric from logs in the schema of docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact
from serendip.artifacts.store import input_record, read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.core.cluster_tree import ClusterTree
from serendip.core.schema import load_items
from serendip.evaluation import metrics
from serendip.evaluation.arms import (
    DEFAULT_TIMEOUT_S,
    BanditArm,
    ContextSimilarArm,
    ExploitationArm,
    OracleArm,
    PlannerArm,
    nominate,
    planner_warnings,
)
from serendip.evaluation.bandit import SCOPES, ClusterBandit
from serendip.evaluation.buckets import (
    DEFAULT_BUCKETS,
    VisualInterestClassifier,
    bucket_gains,
    visual_scores_for,
    world_visual_scores,
)
from serendip.evaluation.replay import ArmSpec, EvaluationLogs, replay_metrics
from serendip.evaluation.report import write_report
from serendip.evaluation.simulator import (
    EvaluationRequest,
    Slate,
    WorldUsers,
    affine_serving_clusters,
    heldout_requests,
    sample_requests,
    simulate,
)
from serendip.stack import ServingStack
from triton_models import build_engines

DEFAULT_REPORTS_ROOT = Path("reports") / "eval"
LOGS_DIR = "logs"
CONTROL = ArmSpec("exploitation", "control", "exploitation (SASRec)")
CONTEXT_SIMILAR = ArmSpec("context_similar", "exploration", "context-similar SASRec")
BANDIT = ArmSpec("bandit", "exploration", "neural-linear bandit")
MLLM = ArmSpec("mllm", "treatment", "MLLM planner")
MLLM_TEXT_ONLY = ArmSpec("mllm_text_only", "treatment", "text-only MLLM planner")
ORACLE = ArmSpec("oracle", "treatment", "oracle planner (true affine cluster)")
ARTIFACT_PROTOCOL = ArmSpec("exploitation_artifact_protocol", "control", "exploitation, SASRec artifact protocol")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="artifact root (default: artifacts)")
    parser.add_argument(
        "--report-dir", type=Path, help=f"where to write the report (default: {DEFAULT_REPORTS_ROOT}/<UTC timestamp>)"
    )
    parser.add_argument("--text-only-mllm", type=Path, help="a text_only mllm artifact: adds the text-only MLLM arm")
    parser.add_argument("--users", type=int, help="evaluate a seeded sample of this many users (default: all)")
    parser.add_argument("--k", type=int, default=10, help="slate size and the @k of Recall/NDCG (default: 10)")
    parser.add_argument(
        "--num-clusters", type=int, default=1, help="clusters the Planner plans per request (default: 1)"
    )
    parser.add_argument("--bandit-alpha", type=float, default=0.5, help="LinUCB exploration weight (default: 0.5)")
    parser.add_argument(
        "--bandit-scope",
        choices=SCOPES,
        default="novel",
        help="clusters the bandit may pick: any cluster new to the user (novel, default) or the context's "
        "serendipitous siblings, like the Planner (siblings)",
    )
    parser.add_argument(
        "--oracle-arm",
        action="store_true",
        help="add an upper-bound arm: the context's true affine cluster (ground truth), then the Planner's retrieval",
    )
    parser.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS, help="visual buckets (default: 5)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="segments, simulated responses, bootstrap (default: 0)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per arm (default: 16)")
    parser.add_argument(
        "--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of each call (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    replay = parser.add_argument_group("replay on your own logs")
    replay.add_argument("--replay", type=Path, help="a logs directory (docs/evaluation.md): replay metrics only")
    replay.add_argument(
        "--items", type=Path, help="items.parquet: the catalogue of coverage/Gini (default: logged items)"
    )
    replay.add_argument("--tree", type=Path, help="tree artifact or directory: enables cluster unexpectedness")
    replay.add_argument("--level", type=int, default=3, help="planning level of the tree (default: 3)")
    replay.add_argument(
        "--visual-labels",
        type=Path,
        help="parquet of item_id, label (1 = visually interesting): trains the frame classifier that scores "
        "context items for the Fig. 8 buckets (needs --items with video_path)",
    )
    return parser.parse_args(argv)


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


def _arm_slates(
    arms: list, requests: list[EvaluationRequest], args: argparse.Namespace, warnings: dict[str, dict[str, int]]
) -> dict[str, list[Slate]]:
    slates = {}
    for arm in arms:
        with planner_warnings() as counts:
            slates[arm.spec.name] = nominate(arm, requests, args.k, args.concurrency, args.timeout_s, not args.quiet)
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


def simulate_report(args: argparse.Namespace, report_dir: Path) -> dict[str, Any]:
    """Run every arm through the services on the world's held-out requests, simulate users, compute metrics."""
    root = args.artifacts
    bundle = resolve_bundle(root, with_plans=False)
    paths = {
        WORLD_KIND: bundle.catalogue,
        TREE_KIND: bundle.tree,
        CURATION_KIND: bundle.curation,
        SASREC_KIND: bundle.sasrec,
        REPOSITORY_KIND: bundle.repository,
    }
    _say("inputs: " + ", ".join(f"{kind} {path.name}" for kind, path in paths.items()), args.quiet)
    world = load_world(paths[WORLD_KIND])
    tree = ClusterTree.load(paths[TREE_KIND])
    level = int(read_manifest(paths[CURATION_KIND])["parameters"]["level"])
    sasrec = SASRecArtifact.load(paths[SASREC_KIND])
    min_satisfaction = float(read_manifest(paths[SASREC_KIND])["parameters"]["min_satisfaction"])
    requests = heldout_requests(world.interactions, min_satisfaction, sasrec.vocabulary.item_ids)
    requests = sample_requests(requests, args.users, args.seed)
    _say(f"{len(requests)} requests (one per user, SASRec leave-last-out test case)", args.quiet)

    embeddings = {item: sasrec.item_embeddings[sasrec.vocabulary.index(item)] for item in sasrec.vocabulary.item_ids}
    delta = int(read_manifest(paths[CURATION_KIND])["parameters"]["delta"])
    bandit = ClusterBandit(tree, level, embeddings, args.bandit_alpha, args.bandit_scope, delta)
    warm = bandit.warm_start(training_transitions(world.interactions, requests))
    _say(f"bandit warm-started on {warm} logged cluster-changing transitions", args.quiet)

    scope_label = {"novel": "novel clusters", "siblings": "sibling clusters"}[args.bandit_scope]
    bandit_spec = ArmSpec(BANDIT.name, BANDIT.role, f"{BANDIT.label} ({scope_label})")
    specs = [CONTROL, CONTEXT_SIMILAR, bandit_spec, MLLM] + ([MLLM_TEXT_ONLY] if args.text_only_mllm else [])
    specs += [ORACLE] if args.oracle_arm else []
    planner_warning_counts: dict[str, dict[str, int]] = {}
    _say("starting tritonserver, Retriever and Planner on 127.0.0.1 ...", args.quiet)
    with ServingStack(
        bundle, plans=False, nearline=False, live_max_in_flight=args.concurrency, work_dir=report_dir
    ) as stack:
        arms = [
            ExploitationArm(CONTROL, stack.retriever_address),
            ContextSimilarArm(CONTEXT_SIMILAR, stack.retriever_address),
            BanditArm(bandit_spec, stack.retriever_address, bandit),
            PlannerArm(MLLM, stack.planner_address, args.num_clusters),
        ]
        if args.oracle_arm:
            arms.append(OracleArm(ORACLE, stack.retriever_address, affine_serving_clusters(world, tree, level)))
        slates = _arm_slates(arms, requests, args, planner_warning_counts)
        check = ExploitationArm(ARTIFACT_PROTOCOL, stack.retriever_address, target_reachable=True)
        protocol_check = _arm_slates([check], requests, args, planner_warning_counts)
    inputs = {kind: input_record(path) for kind, path in paths.items()}
    if args.text_only_mllm:
        text_only = resolve_artifact(args.text_only_mllm, MLLM_KIND)
        inputs["text_only_mllm"] = input_record(text_only)
        scratch = Path(tempfile.mkdtemp(prefix="eval-text-only-"))
        try:
            _say("building a model repository for the text-only MLLM ...", args.quiet)
            repository = build_engines.build_repository(
                build_engines.parse_args(
                    ["--artifacts", str(scratch), "--mllm", str(text_only), "--sasrec", str(paths[SASREC_KIND])]
                )
            )
            text_only_bundle = resolve_bundle(root, repository, with_plans=False)
            with ServingStack(
                text_only_bundle,
                plans=False,
                nearline=False,
                live_max_in_flight=args.concurrency,
                work_dir=report_dir / "text_only",
            ) as stack:
                arm = PlannerArm(MLLM_TEXT_ONLY, stack.planner_address, args.num_clusters)
                slates.update(_arm_slates([arm], requests, args, planner_warning_counts))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    visual_scores = world_visual_scores(world.ground_truth)
    logs = simulate(specs, requests, slates, WorldUsers(world), args.seed, visual_scores)
    logs.save(report_dir / LOGS_DIR)
    _say(f"simulated {len(logs.impressions)} impressions; computing metrics ...", args.quiet)
    results = _metrics(logs, set(sasrec.vocabulary.item_ids), tree, level, args)
    sasrec_metrics = json.loads((paths[SASREC_KIND] / "metrics.json").read_text()).get("sasrec", {})
    results["inputs"] = inputs
    for arm, counts in planner_warning_counts.items():
        results["diagnostics"][arm]["planner_warnings"] = counts
    repeats = sum(r.heldout_item_id in r.history for r in requests) / max(len(requests), 1)
    results["sanity"] = {
        "all_requests_accuracy": _all_requests_recall(requests, slates, args.k),
        "exploitation_with_artifact_protocol": _all_requests_recall(requests, protocol_check, args.k)[
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
        f"user (context = last positive item before the held-out one), slates of {args.k}; Planner plans "
        f"{args.num_clusters} cluster(s) LIVE (no plan table); users respond from the world's satisfaction model "
        f"(s = clip(μ + N(0, σ²)), positive with probability s); seed {args.seed}, {args.resamples} bootstrap "
        "resamples. All arms called through the real services on loopback (Triton + Retriever + Planner)."
    )
    results["title"] = f"simulated, world {paths['world'].name}"
    return results


def _metrics(
    logs: EvaluationLogs, catalog: set[str] | None, tree: ClusterTree | None, level: int, args: argparse.Namespace
) -> dict[str, Any]:
    results = replay_metrics(logs, catalog, tree, level, args.k, args.resamples, args.seed)
    baselines = [arm.name for arm in logs.arms if arm.role != "treatment"]
    has_scores = "visual_score" in logs.requests and logs.requests["visual_score"].notna().any()
    results["buckets"] = (
        [
            bucket_gains(logs, arm.name, baselines, args.buckets, args.resamples, args.seed)
            for arm in logs.arms
            if arm.role == "treatment"
        ]
        if has_scores
        else []
    )
    results["k"] = args.k
    results["parameters"] = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    return results


def replay_report(args: argparse.Namespace) -> dict[str, Any]:
    """Replay metrics on a logs directory."""
    logs = EvaluationLogs.load(args.replay)
    items = load_items(args.items)[0] if args.items else None
    catalog = set(items["item_id"]) if items is not None else None
    tree = ClusterTree.load(resolve_artifact(args.tree, TREE_KIND)) if args.tree else None
    if args.visual_labels:
        if items is None or "video_path" not in items:
            raise SystemExit("--visual-labels needs --items with a video_path column")
        labels = pd.read_parquet(args.visual_labels).merge(items[["item_id", "video_path"]], on="item_id")
        classifier = VisualInterestClassifier(seed=args.seed)
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
    results = _metrics(logs, catalog, tree, args.level, args)
    results["protocol"] = (
        f"Replay of logs in {args.replay} ({len(logs.requests)} requests, {len(logs.impressions)} impressions)."
    )
    results["title"] = f"replay of {args.replay}"
    return results


def main(argv: list[str] | None = None) -> Path:
    """Evaluate and write the report directory; returns it."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the with-blocks stop tritonserver and the services.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report_dir = args.report_dir or DEFAULT_REPORTS_ROOT / stamp
    report_dir.mkdir(parents=True, exist_ok=True)
    results = replay_report(args) if args.replay else simulate_report(args, report_dir)
    written = write_report(report_dir, results)
    for statement in json.loads((report_dir / "metrics.json").read_text())["paper_shape"]["statements"]:
        _say(statement, args.quiet)
    _say(f"report: {report_dir} ({', '.join(path.name for path in written)})", args.quiet)
    return report_dir


if __name__ == "__main__":
    main()
