"""Lineage: one model repository decides every artifact served (stale or foreign ones are refused), and the stage
graph reuses an output only when it was built from the current inputs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from planner.plan_watcher import PlanTableWatcher
from serendip.artifacts.lineage import LineageError, resolve_bundle
from serendip.artifacts.plans import plan_rows, publish_plan_table
from serendip.artifacts.store import ArtifactWriter, input_record
from serendip.pipeline import STAGES, reusable, stages_for


def _publish(root: Path, kind: str, seed: int, **inputs: Path) -> Path:
    """A stand-in version of ``kind``: lineage reads manifests only."""
    records = {name: input_record(path) for name, path in inputs.items()}
    with ArtifactWriter(root, kind, {"seed": seed}, inputs=records) as writer:
        (writer.dir / "content.json").write_text(f'{{"seed": {seed}}}')
    return writer.final_dir


@dataclass(frozen=True)
class Lineage:
    """One chain of stand-in artifacts: world -> tree -> curation -> mllm; sasrec; repository of both."""

    world: Path
    tree: Path
    curation: Path
    mllm: Path
    sasrec: Path
    repository: Path


def _lineage(root: Path) -> Lineage:
    world = _publish(root, "world", 1)
    tree = _publish(root, "tree", 1, world=world)
    curation = _publish(root, "curation", 1, tree=tree, world=world)
    mllm = _publish(root, "mllm", 1, curation=curation)
    sasrec = _publish(root, "sasrec", 1, data=world)
    repository = _publish(root, "model_repository", 1, mllm=mllm, sasrec=sasrec)
    return Lineage(world, tree, curation, mllm, sasrec, repository)


def test_bundle_follows_the_repository_lineage(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    bundle = resolve_bundle(tmp_path)
    assert (bundle.repository, bundle.sasrec, bundle.mllm) == (built.repository, built.sasrec, built.mllm)
    assert (bundle.curation, bundle.tree, bundle.catalogue) == (built.curation, built.tree, built.world)
    assert bundle.plans == tmp_path / "plans"


def test_ann_indexes_are_served_only_when_built_from_the_served_sasrec_and_tree(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    assert resolve_bundle(tmp_path).ann is None  # none built: exact retrieval
    ann = _publish(tmp_path, "sasrec_ann", 1, sasrec=built.sasrec, tree=built.tree)
    assert resolve_bundle(tmp_path).ann == ann
    other_tree = _publish(tmp_path, "tree", 2, world=built.world)
    _publish(tmp_path, "sasrec_ann", 2, sasrec=built.sasrec, tree=other_tree)
    assert resolve_bundle(tmp_path, built.repository).ann is None  # the newest indexes another tree


def test_retrained_sasrec_without_build_engines_is_refused(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    retrained = _publish(tmp_path, "sasrec", 2, data=built.world)
    with pytest.raises(LineageError) as refused:
        resolve_bundle(tmp_path)
    message = str(refused.value)
    assert retrained.name in message and built.sasrec.name in message and "make build-engines" in message
    pinned = resolve_bundle(tmp_path, repository=built.repository)  # an explicit repository serves its own lineage
    assert pinned.sasrec == built.sasrec


def test_new_tree_without_the_stages_after_it_is_refused(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    _publish(tmp_path, "tree", 2, world=built.world)
    with pytest.raises(LineageError, match="make curate train-mllm build-engines batch-plans"):
        resolve_bundle(tmp_path)


def test_plans_of_another_mllm_are_refused_at_start_and_never_hot_loaded(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    own = publish_plan_table(
        tmp_path, plan_rows("v1", [("c1", 1.0, "")]), {"run": 1}, {"mllm": input_record(built.mllm)}
    )
    resolve_bundle(tmp_path)
    watcher = PlanTableWatcher(tmp_path / "plans", expected_mllm_sha256=resolve_bundle(tmp_path).mllm_sha256)
    assert watcher.reload_if_changed() and watcher.table.version == own.name
    other_mllm = _publish(tmp_path / "elsewhere", "mllm", 2, curation=built.curation)
    foreign = {"mllm": input_record(other_mllm)}
    publish_plan_table(tmp_path, plan_rows("v1", [("c2", 1.0, "")]), {"run": 2}, foreign)
    assert not watcher.reload_if_changed() and watcher.table.version == own.name  # the served table stays
    with pytest.raises(LineageError, match="make batch-plans"):
        resolve_bundle(tmp_path)
    assert resolve_bundle(tmp_path, with_plans=False).mllm == built.mllm


def test_serve_refuses_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    _publish(tmp_path, "sasrec", 2, data=built.world)
    completed = subprocess.run(
        [sys.executable, "-m", "serendip.serve", "--artifacts", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "make build-engines" in completed.stderr and "Traceback" not in completed.stderr


def test_the_stage_graph_builds_a_kind_from_what_it_reads_only() -> None:
    assert [stage.kind for stage in stages_for("sasrec")] == ["world", "sasrec"]
    assert [stage.kind for stage in stages_for("model_repository")] == [
        "world", "tree", "curation", "mllm", "sasrec", "model_repository"
    ]  # fmt: skip
    assert "sasrec" not in [stage.kind for stage in stages_for("plans")]
    assert len(stages_for(None)) == len(STAGES)


def test_a_stage_is_reused_only_when_built_from_the_current_inputs(tmp_path: Path) -> None:
    built = _lineage(tmp_path)
    curation_stage = next(stage for stage in STAGES if stage.kind == "curation")
    assert reusable(curation_stage, built.curation, {"world": built.world, "tree": built.tree})
    newer_tree = _publish(tmp_path, "tree", 2, world=built.world)
    assert not reusable(curation_stage, built.curation, {"world": built.world, "tree": newer_tree})
