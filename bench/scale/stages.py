"""The measured stages in run order: what each reads and writes, and which figure is its cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.scale import offline, plans, serving
from bench.scale.context import SizeContext
from bench.scale.isolation import Figures
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.sasrec import SASREC_ANN_KIND, SASREC_KIND
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND


@dataclass(frozen=True)
class Stage:
    """One measured stage: its function, the artifact kinds it reads and publishes, and what ``seconds`` means."""

    name: str
    function: Callable[[SizeContext], Figures]
    reads: tuple[str, ...]
    writes: str | None
    offline: bool
    cost: str
    """what the stage's ``seconds`` measure (the y of its fit)"""


STAGES: tuple[Stage, ...] = (
    Stage("world", offline.world, (), WORLD_KIND, True, "make_world --no-video"),
    Stage("tree", offline.tree, (WORLD_KIND,), TREE_KIND, True, "build_tree"),
    Stage("curation", offline.curation, (WORLD_KIND, TREE_KIND), CURATION_KIND, True, "curate"),
    Stage("sasrec_epoch", offline.sasrec_epoch, (WORLD_KIND,), SASREC_KIND, True, "one SASRec epoch, sampled softmax"),
    Stage("corpus", offline.corpus, (WORLD_KIND,), None, True, "popular-corpus selection"),
    Stage("ann", offline.ann_indexes, (SASREC_KIND, TREE_KIND), SASREC_ANN_KIND, True, "per-cluster ANN build"),
    Stage("plan_table", plans.plan_table, (TREE_KIND, CURATION_KIND), PLANS_KIND, True, "plan table write"),
    Stage(
        "planner",
        serving.planner,
        (CURATION_KIND, PLANS_KIND, WORLD_KIND, TREE_KIND, SASREC_KIND),
        None,
        False,
        "Planner launch to SERVING, plan table loaded",
    ),
    Stage(
        "retriever",
        serving.retriever,
        (WORLD_KIND, TREE_KIND, SASREC_KIND, SASREC_ANN_KIND, CURATION_KIND),
        None,
        False,
        "Retriever launch to SERVING, ANN indexes loaded",
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
PRODUCER = {stage.writes: stage.name for stage in STAGES if stage.writes}
