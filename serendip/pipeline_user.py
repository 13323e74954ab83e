"""``python -m serendip.pipeline_user``: your catalogue, from two parquet files to a served Recommend, in one command.

Stages: import (validate ``--items`` / ``--interactions`` and copy them to the root of ``--artifacts`` as its
imported catalogue, relative media paths made absolute) -> cluster tree -> curation -> MLLM (thumbnail or
sampled frames, whichever the catalogue has; ``--mllm-steps``) -> SASRec -> build engines -> popular corpus ->
frames -> batch plans -> serve check (tritonserver, Retriever and Planner on loopback, one Recommend printed,
stopped). The stages after the import are those of :mod:`serendip.pipeline` reading the imported catalogue
instead of a synthetic world: a stage whose newest output was built from the same inputs is reused (``--rerun
KIND`` runs one anyway, ``--rebuild`` all). The run ends with every stage's quality figures
(:func:`quality_summary`). See docs/data.md, "Your own catalogue, end to end".
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import grpc
import pandas as pd
import tyro

from serendip.artifacts.corpus import CORPUS_KIND
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.sasrec import SASREC_KIND
from serendip.artifacts.store import file_sha256, read_manifest
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cli import CommaInts, run_job
from serendip.core.errors import DataError
from serendip.core.schema import load_dataset
from serendip.models.mllm.errors import MllmError
from serendip.pipeline import STAGES, PipelineConfig, Stage, run_pipeline
from serendip.stack import ServingStack
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from triton_models.engines import EngineKind
from triton_models.seqrec import SeqrecFormat

MEDIA_COLUMNS = ("video_path", "thumbnail_path")
CATALOGUE_FILES = ("items.parquet", "interactions.parquet")
_CATALOGUE_RECORDS = {"items": WORLD_KIND, "interactions": WORLD_KIND}
"""How the jobs record an imported catalogue in their manifests: the sha256 of each table."""
_RECORDED = {
    TREE_KIND: _CATALOGUE_RECORDS,
    CURATION_KIND: {**_CATALOGUE_RECORDS, TREE_KIND: TREE_KIND},
    SASREC_KIND: {"data": WORLD_KIND},
    CORPUS_KIND: _CATALOGUE_RECORDS,
    FRAMES_KIND: {**_CATALOGUE_RECORDS, CORPUS_KIND: CORPUS_KIND},
}
USER_STAGES: tuple[Stage, ...] = tuple(
    replace(stage, recorded=_RECORDED.get(stage.kind, stage.recorded)) for stage in STAGES if stage.kind != WORLD_KIND
)
"""The stage graph after the world, each stage reading the catalogue imported at the root in the world's place."""

UserKind = Literal["tree", "curation", "mllm", "sasrec", "model_repository", "corpus", "frames", "plans"]


@dataclass(frozen=True)
class UserPipelineJob:
    """Options of ``python -m serendip.pipeline_user`` (``make pipeline ITEMS= INTERACTIONS=``)."""

    items: Path
    """your items.parquet (schema: docs/data.md)"""
    interactions: Path
    """your interactions.parquet"""
    media_root: Path | None = None
    """base of relative video/thumbnail paths (None: the items file's directory)"""
    artifacts: Path = Path("artifacts_catalogue")
    """artifacts root: the catalogue is imported at its root, each stage writes <artifacts>/<kind>/<version>"""
    mllm_steps: int = 300
    """MLLM optimiser steps (a budget: also stops at --mllm-minutes)"""
    mllm_minutes: float = 10.0
    """MLLM wall-clock budget"""
    frames: Literal["auto", "thumbnail", "1", "2", "4", "8"] = "auto"
    """MLLM visual input (auto: 4 sampled frames when any item has a video, else the thumbnail)"""
    branching: CommaInts | None = None
    """tree children per node at levels 1..4 (None: build_tree's 3,3,4,2; it needs an item per leaf)"""
    namer_model: Path | None = None
    """local causal-LM checkpoint (a transformers directory) that names the tree's nodes (None: their keywords)"""
    sasrec_epochs: int = 20
    """SASRec training epochs"""
    engine: EngineKind = EngineKind.TORCH
    """build-engines engine"""
    device: Literal["cpu", "cuda"] = "cpu"
    """build-engines device"""
    seqrec_format: SeqrecFormat = "torchscript"
    """build-engines seqrec format"""
    until: UserKind | None = None
    """build only this kind and what it reads (None: everything, then the serve check)"""
    rerun: Annotated[tuple[UserKind, ...], tyro.conf.UseAppendAction] = ()
    """run this kind's stage even when its output is reusable; later stages follow"""
    rebuild: bool = False
    """run every stage even when its output is reusable"""
    serve_check: bool = True
    """start the stack, send one Recommend, print it, stop (--no-serve-check skips it)"""
    quiet: bool = False
    """no progress bars"""

    def __post_init__(self) -> None:
        if self.mllm_steps < 1:
            raise ValueError(f"--mllm-steps must be >= 1, got {self.mllm_steps}")
        if self.sasrec_epochs < 1:
            raise ValueError(f"--sasrec-epochs must be >= 1, got {self.sasrec_epochs}")


# --- import ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportResult:
    """What the import found: the tables' sizes, the media the catalogue has, and whether the root changed."""

    items: int
    interactions: int
    videos: int
    thumbnails: int
    changed: tuple[str, ...]
    """the root's table files that were (re)written; empty when the root already held these tables"""


def _absolute_media(items: pd.DataFrame, media_root: Path) -> pd.DataFrame:
    """``items`` with relative video/thumbnail paths resolved against ``media_root``."""
    items = items.copy()
    for column in MEDIA_COLUMNS:
        if column in items:
            items[column] = [
                path if not isinstance(path, str) or not path or Path(path).is_absolute() else str(media_root / path)
                for path in items[column]
            ]
    return items


def _replace_if_changed(source: Path, target: Path) -> bool:
    """Copy ``source`` onto ``target`` unless both already hold the same bytes; True when it copied."""
    if target.is_file() and file_sha256(target) == file_sha256(source):
        return False
    shutil.copyfile(source, target)
    return True


def import_catalogue(
    items: Path, interactions: Path, root: Path, media_root: Path | None = None, log: Callable[[str], None] = print
) -> ImportResult:
    """Validate the tables and place them at ``root`` as its imported catalogue (see docs/data.md).

    Items with relative media paths are rewritten with absolute ones (against ``media_root``, else the items
    file's directory), so the root's tables resolve wherever they are read from; otherwise the files are
    copied as they are. A table whose bytes are already at the root is left untouched (its stages are reused).
    """
    items, interactions, root = Path(items), Path(interactions), Path(root)
    for path in (items, interactions):
        if not path.is_file():
            raise DataError(f"{path}: no such file")
    if (root / WORLD_KIND).exists():
        raise DataError(
            f"{root} holds a synthetic world ({root / WORLD_KIND}), which the jobs would read instead of your "
            f"catalogue; choose another --artifacts"
        )
    if root.resolve() in (items.parent.resolve(), interactions.parent.resolve()):
        raise DataError(f"--artifacts {root} is the directory of your tables; choose another one")
    media_base = (media_root or items.parent).resolve()
    dataset = load_dataset(items, interactions, media_base)  # validates; raises SchemaError on a missing column
    log("; ".join(report.summary() for report in (dataset.items_report, dataset.interactions_report)))
    root.mkdir(parents=True, exist_ok=True)
    raw = pd.read_parquet(items)
    changed = []
    with tempfile.TemporaryDirectory(dir=root, prefix=".import-") as scratch:
        items_source = items
        absolute = _absolute_media(raw, media_base)
        if not absolute.equals(raw):
            items_source = Path(scratch) / "items.parquet"
            absolute.to_parquet(items_source, index=False)
        for source, name in ((items_source, "items.parquet"), (interactions, "interactions.parquet")):
            if _replace_if_changed(source, root / name):
                changed.append(name)
    has = {
        column: int(dataset.items[column].notna().sum()) if column in dataset.items else 0 for column in MEDIA_COLUMNS
    }
    result = ImportResult(
        len(dataset.items), len(dataset.interactions), has["video_path"], has["thumbnail_path"], tuple(changed)
    )
    state = f"imported ({', '.join(changed)} written)" if changed else "unchanged since the last import"
    log(f"catalogue at {root}: {result.items} items ({result.videos} with a video, {result.thumbnails} with a "
        f"thumbnail), {result.interactions} interactions; {state}")  # fmt: skip
    return result


def visual_input(requested: str, result: ImportResult) -> str:
    """The MLLM's frames setting: ``requested``, or for ``auto`` 4 sampled frames with videos, else the thumbnail."""
    if requested != "auto":
        return requested
    return "4" if result.videos or not result.thumbnails else "thumbnail"


def pipeline_config(job: UserPipelineJob, frames: str) -> PipelineConfig:
    """The stage configs of a run: the defaults with the job's budgets, tree shape and namer, and engine."""
    config = PipelineConfig(quiet=job.quiet)
    tree = replace(config.tree, branching=job.branching or config.tree.branching, namer_model=job.namer_model)
    return replace(
        config,
        tree=tree,
        mllm=replace(config.mllm, steps=job.mllm_steps, max_minutes=job.mllm_minutes, frames=frames),
        sasrec=replace(config.sasrec, epochs=job.sasrec_epochs),
        repository=replace(config.repository, engine=job.engine, device=job.device, seqrec_format=job.seqrec_format),
    )


# --- serve check -----------------------------------------------------------------------------------------------
def serve_check(root: Path, log: Callable[[str], None] = print) -> planner_pb2.RecommendResponse:
    """Start the stack on the root's newest artifacts, send one Recommend for the most-interacted item, print it."""
    bundle = resolve_bundle(root)
    items = pd.read_parquet(root / "items.parquet", columns=["item_id", "title"])
    titles = dict(zip(items["item_id"], items["title"], strict=True))
    counts = pd.read_parquet(root / "interactions.parquet", columns=["item_id"])["item_id"].value_counts()
    context = str(counts.index[0])
    log("==> serve check: tritonserver, Retriever and Planner on 127.0.0.1")
    with ServingStack(bundle) as stack, grpc.insecure_channel(stack.planner_address) as channel:
        request = planner_pb2.RecommendRequest(
            context_item=common_pb2.ItemRef(item_id=context), num_items=4, num_clusters=2
        )
        response = planner_pb2_grpc.PlannerStub(channel).Recommend(request, timeout=60)
    plan = response.plan
    source = planner_pb2.PlanSource.Name(plan.source).removeprefix("PLAN_SOURCE_")
    log(f"Recommend for {context} {titles.get(context, '')!r} (cluster {plan.context_cluster.description!r}):")
    log(f"  plan ({source}, {plan.plan_version}):")
    for planned in plan.clusters:
        reasoning = f"  ({planned.reasoning})" if planned.reasoning else ""
        log(f"    {planned.score:8.3f}  {planned.cluster.description!r}{reasoning}")
    for item in response.items:
        log(f"    -> {item.item_id} {titles.get(item.item_id, '')!r}  [{item.reason}]")
    return response


# --- quality summary -------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _figure(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


def quality_summary(built: dict[str, Path]) -> list[str]:
    """One line per stage with the figures to read on your catalogue (docs/data.md says what good ones look like)."""
    lines = []
    if TREE_KIND in built:
        levels = _read_json(built[TREE_KIND] / "report.json").get("levels", {})
        figures = ", ".join(
            f"L{level} {_figure(values, 'coengagement_lift')} / {_figure(values, 'text_coherence')}"
            for level, values in sorted(levels.items())
        )
        lines.append(f"tree: held-out co-engagement lift / text coherence per level: {figures}")
    if CURATION_KIND in built:
        report = _read_json(built[CURATION_KIND] / "report.json")
        kept = report.get("examples_kept", {})
        lines.append(
            f"curation: {report.get('pairs_serendipitous')} serendipitous pairs of {report.get('pairs_seen')}; "
            f"examples kept {kept.get('train')} train / {kept.get('heldout')} held-out; clusters covered "
            f"{report.get('clusters_covered_in_train')} of {report.get('clusters')}; SFT rows {report.get('sft_rows')}"
        )
    if MLLM_KIND in built:
        metrics = _read_json(built[MLLM_KIND] / "metrics.json")
        model, popularity = metrics.get("model", {}), metrics.get("baselines", {}).get("popularity", {})
        thought = (
            f", thought keyword recall {_figure(model, 'thought_keyword_recall')} (another item's: "
            f"{_figure(model, 'thought_keyword_recall_other')})"
            if "thought_keyword_recall" in model
            else ""
        )
        lines.append(
            f"MLLM ({metrics.get('variant')}, frames {metrics.get('frames')}, step {model.get('step')}): held-out "
            f"recall {_figure(model, 'recall')} (popularity {_figure(popularity, 'recall')}), recall@1 "
            f"{_figure(model, 'recall@1')}, candidate_recall@1 {_figure(model, 'candidate_recall@1')}, match rate "
            f"{_figure(model, 'match_rate')}{thought}"
        )
    if SASREC_KIND in built:
        metrics = _read_json(built[SASREC_KIND] / "metrics.json")
        lines.append(
            f"SASRec: recall@10 {_figure(metrics.get('sasrec', {}), 'recall@10')} (popularity "
            f"{_figure(metrics.get('popularity', {}), 'recall@10')}; leave-last-out, full ranking)"
        )
    if PLANS_KIND in built:
        counts = read_manifest(built[PLANS_KIND]).get("counts", {})
        lines.append(
            f"plans: {counts.get('planned')} context items planned ({counts.get('rows')} plan rows, "
            f"{counts.get('errors')} errors) of a {counts.get('items')}-item corpus"
        )
    return lines


# --- the run ---------------------------------------------------------------------------------------------------
def run(job: UserPipelineJob, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Import, build (or reuse) every stage, check the served stack, print the quality summary."""
    log = log or (lambda line: print(line, flush=True))
    root = Path(job.artifacts)
    log("==> import")
    imported = import_catalogue(job.items, job.interactions, root, job.media_root, log)
    frames = visual_input(job.frames, imported)
    log(f"    MLLM visual input: {frames} ({imported.videos} videos, {imported.thumbnails} thumbnails)")
    built = run_pipeline(
        root,
        pipeline_config(job, frames),
        job.until,
        job.rebuild,
        log=log,
        rerun=job.rerun,
        stages=USER_STAGES,
        sources={WORLD_KIND: root},
    )
    built.pop(WORLD_KIND, None)
    if job.serve_check and job.until is None:
        serve_check(root, log)
    log("==> quality summary")
    for line in quality_summary(built):
        log(f"  {line}")
    for kind, path in built.items():
        log(f"  {kind:<17}{path}")
    return built


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """``run`` with options from the command line; bad data ends as one line naming it."""
    return run_job(run, UserPipelineJob, argv, __doc__, "python -m serendip.pipeline_user", (DataError, MllmError))


if __name__ == "__main__":
    main()
