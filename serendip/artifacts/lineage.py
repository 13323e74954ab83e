"""Serving by lineage: every artifact a serving stack reads, resolved once from one model repository.

A ``model_repository`` manifest names the ``sasrec`` and ``mllm`` it was built from; the ``mllm`` names its
``curation``; the ``curation`` names its ``tree`` and its catalogue (a ``world`` or a user's items file).
Following those records, instead of each service taking each kind's ``LATEST``, is what keeps the user
embeddings Triton computes and the item table the Retriever ranks with from two different models.

When the bundle is the artifact root's newest repository, each kind's ``LATEST`` must be the version the
lineage names: a newer one means a stage was re-run without the stages after it, and serving refuses with
the command that fixes it. Plans must come from the bundle's ``mllm``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.sasrec import SASREC_ANN_KIND, SASREC_KIND
from serendip.artifacts.store import LATEST_NAME, read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.errors import ArtifactError

FIX_COMMANDS = {
    SASREC_KIND: "make build-engines",
    MLLM_KIND: "make build-engines batch-plans",
    CURATION_KIND: "make train-mllm build-engines batch-plans",
    TREE_KIND: "make curate train-mllm build-engines batch-plans",
}
"""What to re-run when the newest version of a kind is not the one the served repository descends from."""


class LineageError(ArtifactError):
    """Artifacts that would be served together were not built from each other."""


def resolve_input(root: Path, consumer_dir: Path, kind: str, required: bool = True) -> Path | None:
    """The version dir of ``kind`` that ``consumer_dir``'s manifest records as an input.

    The recorded path is used when it still holds that version (same content hash); otherwise the version is
    looked up under ``root/<kind>/`` (a root moved or recorded from another working directory).
    """
    record: dict[str, Any] | None = read_manifest(consumer_dir).get("inputs", {}).get(kind)
    if not isinstance(record, dict) or "version" not in record:
        if required:
            raise LineageError(
                f"{consumer_dir}: its manifest records no {kind} input; rebuild it with the current jobs"
            )
        return None
    for candidate in (Path(record.get("path", "")), Path(root) / kind / record["version"]):
        if (candidate / "manifest.json").is_file():
            if read_manifest(candidate).get("content_sha256") == record.get("content_sha256"):
                return candidate
    raise LineageError(
        f"{consumer_dir.name} ({read_manifest(consumer_dir)['kind']}) was built from {kind} {record['version']}, "
        f"which is no longer under {Path(root) / kind} (or its content changed)"
    )


def plans_mllm_sha256(plans_dir: str | os.PathLike[str]) -> str | None:
    """Content hash of the ``mllm`` a plans version was planned with (None when it records none)."""
    record = read_manifest(plans_dir).get("inputs", {}).get(MLLM_KIND)
    return record.get("content_sha256") if isinstance(record, dict) else None


@dataclass(frozen=True)
class ServingBundle:
    """The artifact versions one serving stack reads, all from one lineage."""

    root: Path
    repository: Path
    sasrec: Path
    mllm: Path
    curation: Path
    tree: Path
    catalogue: Path | None
    """The curation's catalogue: a world version dir or a user's items.parquet (LIVE pixels of cache misses)."""
    plans: Path
    """The plans kind directory (watched for new versions; it need not exist yet)."""
    ann: Path | None = None
    """The newest ``sasrec_ann`` version when it was built from this sasrec and tree (per-cluster ANN indexes)."""

    @property
    def mllm_sha256(self) -> str:
        """Content hash of the served MLLM: plans of any other MLLM are never served."""
        return str(read_manifest(self.mllm)["content_sha256"])

    def describe(self) -> str:
        """One line per artifact: what is served."""
        rows = [("model_repository", self.repository), ("mllm", self.mllm), ("sasrec", self.sasrec)]
        rows += [("curation", self.curation), ("tree", self.tree), ("catalogue", self.catalogue)]
        if self.ann is not None:
            rows.append(("sasrec_ann", self.ann))
        return "\n".join(f"  {kind:<17}{path}" for kind, path in rows)


def _catalogue(root: Path, curation: Path) -> Path | None:
    world = resolve_input(root, curation, WORLD_KIND, required=False)
    if world is not None:
        return world
    items = read_manifest(curation).get("inputs", {}).get("items")
    path = Path(items["path"]) if isinstance(items, dict) and "path" in items else None
    return path if path is not None and path.is_file() else None


def _check_newest(root: Path, lineage: dict[str, Path], repository: Path) -> None:
    for kind, served in lineage.items():
        try:
            newest = resolve_artifact(root, kind)
        except ArtifactError:
            continue
        if newest.resolve() != served.resolve():
            raise LineageError(
                f"the newest {kind} is {newest.name}, but model repository {repository.name} descends from {kind} "
                f"{served.name}: serving them together would mix model versions. Run `{FIX_COMMANDS[kind]}` "
                f"(or serve that repository explicitly with --repository {repository})"
            )


def check_plans(plans_dir: Path, mllm: Path) -> None:
    """Fail unless the plans version ``plans_dir`` was planned with ``mllm``."""
    planned_with = plans_mllm_sha256(plans_dir)
    if planned_with != read_manifest(mllm)["content_sha256"]:
        recorded = read_manifest(plans_dir).get("inputs", {}).get(MLLM_KIND, {})
        raise LineageError(
            f"plans {plans_dir.name} were planned with mllm {recorded.get('version', '(not recorded)')}, but the "
            f"served model repository runs mllm {mllm.name}. Run `make batch-plans`"
        )


def _ann_indexes(root: Path, sasrec: Path, tree: Path) -> Path | None:
    """The newest ``sasrec_ann`` version if it indexes ``sasrec``'s items by ``tree``; None otherwise."""
    if not (root / SASREC_ANN_KIND / LATEST_NAME).is_file():
        return None
    newest = resolve_artifact(root, SASREC_ANN_KIND)
    try:
        built_from = (resolve_input(root, newest, SASREC_KIND), resolve_input(root, newest, TREE_KIND))
    except LineageError:
        return None
    return newest if built_from == (sasrec, tree) else None


def resolve_bundle(
    root: str | os.PathLike[str], repository: str | os.PathLike[str] | None = None, with_plans: bool = True
) -> ServingBundle:
    """The bundle of ``repository`` (default: the root's newest), checked as the module docstring says.

    ``with_plans=False`` is for stacks that serve no plan table (the newest plans are then not checked).
    """
    root = Path(root)
    repository_dir = resolve_artifact(repository if repository is not None else root, REPOSITORY_KIND)
    sasrec = resolve_input(root, repository_dir, SASREC_KIND)
    mllm = resolve_input(root, repository_dir, MLLM_KIND)
    curation = resolve_input(root, mllm, CURATION_KIND)  # type: ignore[arg-type]
    tree = resolve_input(root, curation, TREE_KIND)  # type: ignore[arg-type]
    assert sasrec is not None and mllm is not None and curation is not None and tree is not None
    if repository is None:
        _check_newest(
            root, {SASREC_KIND: sasrec, MLLM_KIND: mllm, CURATION_KIND: curation, TREE_KIND: tree}, repository_dir
        )
    plans = root / PLANS_KIND
    if with_plans and (plans / LATEST_NAME).is_file():
        check_plans(resolve_artifact(plans), mllm)
    catalogue, ann = _catalogue(root, curation), _ann_indexes(root, sasrec, tree)
    return ServingBundle(root, repository_dir, sasrec, mllm, curation, tree, catalogue, plans, ann)
