"""Assemble a Planner from artifacts: curation (tree + fallback), plan table, item store, Triton URL."""

from __future__ import annotations

from pathlib import Path

from planner.content import ItemStore
from planner.fallback import FallbackPolicy
from planner.live import MllmClient
from planner.overlay import OverlayPlans
from planner.placement import ContentPlacement, TitlePlacement, VisualPlacement
from planner.plan_watcher import PlanTableWatcher
from planner.planning import Planner, PlannerSettings, planning_clusters
from planner.popular import PopularInCluster
from serendip.artifacts.curation import load_curation
from serendip.artifacts.overlay import OverlayStore
from serendip.artifacts.plans import PLANS_KIND


def load_planner(
    curation_path: Path,
    plans_root: Path | None = None,
    items_path: Path | None = None,
    triton_url: str | None = None,
    plans_poll_s: float = 1.0,
    mllm_sha256: str | None = None,
    overlay_root: Path | None = None,
    settings: PlannerSettings | None = None,
) -> Planner:
    """A Planner at the curation's planning level and δ.

    ``plans_root`` is an artifacts root or its ``plans`` kind directory, which need not exist yet: it is
    watched, so a version published later is picked up without a restart; with ``mllm_sha256``, only versions
    planned with that MLLM are loaded. ``overlay_root`` (an artifacts root; needs ``mllm_sha256``) turns on
    nearline write-back into that MLLM's overlay plan table.
    """
    curation = load_curation(curation_path)
    level, delta = int(curation.manifest["parameters"]["level"]), int(curation.manifest["parameters"]["delta"])
    plans = None
    if plans_root is not None:
        kind_dir = Path(plans_root) if Path(plans_root).name == PLANS_KIND else Path(plans_root) / PLANS_KIND
        plans = PlanTableWatcher(kind_dir, poll_s=plans_poll_s, expected_mllm_sha256=mllm_sha256)
        plans.reload_if_changed()
    overlay = None
    if overlay_root is not None:
        if mllm_sha256 is None:
            raise ValueError("an overlay needs the served MLLM's content hash (mllm_sha256)")
        lineage = {"curation_version": curation.manifest["version"]}
        overlay = OverlayPlans(OverlayStore(overlay_root, mllm_sha256, lineage))
    items = ItemStore.load(items_path) if items_path else None
    tree = curation.tree
    cluster_of = planning_clusters(tree, level)
    return Planner(
        tree=curation.tree,
        level=level,
        delta=delta,
        fallback=FallbackPolicy.from_candidates(curation.curation.candidates, curation.tree, level, delta),
        plans=plans,
        mllm=MllmClient(triton_url) if triton_url else None,
        items=items,
        popular=PopularInCluster(curation.tree, level, items.impressions if items else {}),
        settings=settings,
        overlay=overlay,
        placement=_placement(items, cluster_of) if items else None,
        cluster_of=cluster_of,
    )


def _placement(items: ItemStore, cluster_of: dict[str, str]) -> ContentPlacement:
    """Fresh uploads placed by the catalogue's thumbnails (when it has any) and titles."""
    thumbnails = items.thumbnails()
    visual = VisualPlacement.from_thumbnails(thumbnails, cluster_of) if thumbnails else None
    return ContentPlacement(TitlePlacement(items.titles(), cluster_of), visual)
