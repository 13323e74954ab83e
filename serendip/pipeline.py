"""The stage graph: world -> tree -> curation -> MLLM, SASRec -> model repository -> corpus -> frames -> plans.

Every stage is a job that publishes one artifact kind: ``run(config)`` on the job's config dataclass, which
:class:`PipelineConfig` holds (its CLI runs it alone). :func:`run_pipeline` runs the stages in order and reuses a
stage's newest output when it was built from the very versions the stage would read now (its manifest's input
records match them); otherwise, or with ``rebuild``, the stage runs. ``make demo``, ``make data``, the benchmarks
and the test fixtures all build their artifacts through this graph, with a :class:`PipelineConfig` preset
(``DEMO``, ``SMALL``) or their own job configs.

``python -m serendip.pipeline --until tree`` builds a kind and what it reads; ``--rerun tree`` runs that stage even
when its output is reusable. The Makefile's stage targets (``make world``, ``tree``, ``curate``, ``train-mllm``,
``train-sasrec``, ``build-engines``, ``batch-plans``, ``data``) are such calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from ray_jobs import batch_plans, decode_frames
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.corpus import CORPUS_KIND
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.sasrec import SASREC_KIND
from serendip.artifacts.store import MANIFEST_NAME, file_sha256, read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cli import parse_config
from serendip.core.errors import ArtifactError
from serendip.jobs import build_tree, curate, make_world, popular_corpus, train_mllm, train_sasrec
from triton_models import build_engines
from triton_models.engines import EngineKind
from triton_models.seqrec import SeqrecFormat


@dataclass(frozen=True)
class PipelineConfig:
    """Each stage's job config; the graph fills in the inputs it reads, the artifact root and ``quiet``."""

    world: make_world.MakeWorldJob = field(default_factory=make_world.MakeWorldJob)
    tree: build_tree.BuildTreeJob = field(default_factory=build_tree.BuildTreeJob)
    curation: curate.CurateJob = field(default_factory=curate.CurateJob)
    mllm: train_mllm.TrainMllmJob = field(default_factory=train_mllm.TrainMllmJob)
    sasrec: train_sasrec.TrainSasrecJob = field(default_factory=train_sasrec.TrainSasrecJob)
    repository: build_engines.BuildEnginesJob = field(default_factory=build_engines.BuildEnginesJob)
    """``make build-engines ENGINE= DEVICE= SEQREC_FORMAT=`` set its engine, device and seqrec format."""
    corpus: popular_corpus.PopularCorpusJob = field(default_factory=popular_corpus.PopularCorpusJob)
    frames: decode_frames.DecodeFramesJob = field(default_factory=decode_frames.DecodeFramesJob)
    plans: batch_plans.BatchPlansJob = field(default_factory=batch_plans.BatchPlansJob)
    quiet: bool = False
    """No progress bars in any stage."""


DEMO = PipelineConfig(mllm=train_mllm.TrainMllmJob(max_minutes=6.0), sasrec=train_sasrec.TrainSasrecJob(epochs=20))
"""``make demo``: the 2,000-item world, every prompt variant curated, a 6-minute MLLM budget."""
SMALL = PipelineConfig(
    world=make_world.MakeWorldJob(items=200, users=300, branching=(2, 2, 3, 2), seed=7),
    curation=curate.CurateJob(variants=("video_cot",), frame_counts=(2,)),
    mllm=train_mllm.TrainMllmJob(frames="2", steps=4, batch_size=4, heldout_limit=4, checkpoint_every=4),
    sasrec=train_sasrec.TrainSasrecJob(epochs=2),
    repository=build_engines.BuildEnginesJob(mllm_queue_delay_us=2000),
    quiet=True,
)
"""Test size: 200 items, an MLLM of 4 steps; the whole graph in about a minute."""


def _world(root: Path, config: PipelineConfig, _: dict[str, Path]) -> object:
    return make_world.run(replace(config.world, artifacts=root, quiet=config.quiet))


def _tree(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    return build_tree.run(replace(config.tree, world=inputs[WORLD_KIND], artifacts=root, quiet=config.quiet))


def _curation(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = {"world": inputs[WORLD_KIND], "tree": inputs[TREE_KIND]}
    return curate.run(replace(config.curation, **sources, artifacts=root, quiet=config.quiet))


def _mllm(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    return train_mllm.run(replace(config.mllm, curation=inputs[CURATION_KIND], artifacts=root, quiet=config.quiet))


def _sasrec(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    return train_sasrec.run(replace(config.sasrec, data=inputs[WORLD_KIND], artifacts=root))


def _repository(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = {"mllm": inputs[MLLM_KIND], "sasrec": inputs[SASREC_KIND]}
    return build_engines.run(replace(config.repository, **sources, artifacts=root))


def _corpus(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    return popular_corpus.run(replace(config.corpus, world=inputs[WORLD_KIND], artifacts=root, quiet=config.quiet))


def _frames(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = {"world": inputs[WORLD_KIND], "corpus": inputs[CORPUS_KIND], "mllm": inputs[MLLM_KIND]}
    return decode_frames.run(replace(config.frames, **sources, artifacts=root, quiet=config.quiet))


def _plans(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = {"frame_store": inputs[FRAMES_KIND], "mllm": inputs[MLLM_KIND]}
    return batch_plans.run(replace(config.plans, **sources, artifacts=root, quiet=config.quiet))


@dataclass(frozen=True)
class Stage:
    """One job of the graph: the artifact kind it publishes and the kinds it reads."""

    name: str
    kind: str
    reads: tuple[str, ...]
    run: Callable[[Path, PipelineConfig, dict[str, Path]], object]
    recorded: dict[str, str] = field(default_factory=dict)
    """Manifest input record name -> the kind it names: what reuse checks against the current inputs."""
    needs_ray: bool = False


def _records(*kinds: str) -> dict[str, str]:
    return {kind: kind for kind in kinds}


STAGES: tuple[Stage, ...] = (
    Stage("world", WORLD_KIND, (), _world),
    Stage("cluster tree", TREE_KIND, (WORLD_KIND,), _tree, _records(WORLD_KIND)),
    Stage("curation", CURATION_KIND, (WORLD_KIND, TREE_KIND), _curation, _records(WORLD_KIND, TREE_KIND)),
    Stage("MLLM fine-tuning", MLLM_KIND, (CURATION_KIND,), _mllm, _records(CURATION_KIND)),
    Stage("SASRec training", SASREC_KIND, (WORLD_KIND,), _sasrec, {"data": WORLD_KIND}),
    Stage("build engines", REPOSITORY_KIND, (MLLM_KIND, SASREC_KIND), _repository, _records(MLLM_KIND, SASREC_KIND)),
    Stage("popular corpus", CORPUS_KIND, (WORLD_KIND,), _corpus, _records(WORLD_KIND)),
    Stage(
        "frame decoding (Ray)",
        FRAMES_KIND,
        (WORLD_KIND, CORPUS_KIND, MLLM_KIND),
        _frames,
        _records(WORLD_KIND, CORPUS_KIND),
        needs_ray=True,
    ),
    Stage("batch plans (Ray)", PLANS_KIND, (FRAMES_KIND, MLLM_KIND), _plans, _records(MLLM_KIND), needs_ray=True),
)
KINDS = tuple(stage.kind for stage in STAGES)


def _newest(root: Path, kind: str) -> Path | None:
    try:
        return resolve_artifact(root, kind)
    except ArtifactError:
        return None


def reusable(stage: Stage, existing: Path, inputs: dict[str, Path]) -> bool:
    """True when ``existing`` was built from exactly the versions in ``inputs`` (per the stage's recorded inputs).

    An input that is a plain directory (an imported catalogue: ``items.parquet`` and ``interactions.parquet``, no
    manifest) is checked per file: a record ``{"sha256": …}`` named ``items`` against ``<dir>/items.parquet``; a
    record that is only the directory's path (no hash) counts as current when ``existing`` was published after the
    directory's parquet files last changed.
    """
    records = read_manifest(existing).get("inputs", {})
    for record_name, kind in stage.recorded.items():
        record, source = records.get(record_name), inputs[kind]
        if not (source / MANIFEST_NAME).is_file():
            if not _plain_input_current(record, record_name, source, existing):
                return False
        elif not isinstance(record, dict) or record.get("content_sha256") != read_manifest(source)["content_sha256"]:
            return False
    return True


def _plain_input_current(record: object, record_name: str, source: Path, existing: Path) -> bool:
    if isinstance(record, dict):
        file = source / f"{record_name}.parquet"
        return file.is_file() and record.get("sha256") == file_sha256(file)
    if record is None or Path(str(record)).resolve() != source.resolve():
        return False
    changed = max((file.stat().st_mtime for file in source.glob("*.parquet")), default=0.0)
    return (existing / MANIFEST_NAME).stat().st_mtime > changed


def stages_for(until: str | None, stages: Sequence[Stage] = STAGES) -> tuple[Stage, ...]:
    """The stages that build ``until`` (it and everything it reads, transitively), in graph order; all for None.

    A kind that no stage of ``stages`` publishes (a source given to :func:`run_pipeline`) is read, not built.
    """
    if until is None:
        return tuple(stages)
    kinds = [stage.kind for stage in stages]
    if until not in kinds:
        raise ValueError(f"until must be one of {', '.join(kinds)}, got {until!r}")
    by_kind = {stage.kind: stage for stage in stages}
    needed, pending = set(), [until]
    while pending:
        kind = pending.pop()
        if kind not in needed and kind in by_kind:
            needed.add(kind)
            pending += by_kind[kind].reads
    return tuple(stage for stage in stages if stage.kind in needed)


def run_pipeline(
    root: Path,
    config: PipelineConfig,
    until: str | None = None,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
    rerun: Sequence[str] = (),
    stages: Sequence[Stage] = STAGES,
    sources: dict[str, Path] | None = None,
) -> dict[str, Path]:
    """Run (or reuse) the stages that build ``until`` (every stage for None); returns kind -> version dir.

    ``rebuild`` runs every stage; ``rerun`` names kinds whose stage runs even when its output is reusable (the
    stages after it then run too, since their inputs changed). ``stages`` replaces the graph (its order is the
    run order); ``sources`` gives kinds that no stage builds, e.g. ``{WORLD_KIND: root}`` for a catalogue
    imported at the root (``serendip.pipeline_user``).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ray_started = False
    built: dict[str, Path] = dict(sources or {})
    with contextlib.ExitStack() as ray:
        for stage in stages_for(until, stages):
            inputs = {kind: built[kind] for kind in stage.reads}
            existing = None if rebuild or stage.kind in rerun else _newest(root, stage.kind)
            if existing is not None and reusable(stage, existing, inputs):
                log(f"==> {stage.name}: reusing {existing}")
                built[stage.kind] = existing
                continue
            if stage.needs_ray and not ray_started:  # one local Ray for every Ray stage, not one each
                ray.enter_context(ray_session())
                ray_started = True
            log(f"==> {stage.name}")
            started = time.monotonic()
            stage.run(root, config, inputs)
            built[stage.kind] = resolve_artifact(root, stage.kind)
            log(f"    {stage.name} took {time.monotonic() - started:.0f} s")
    return built


ArtifactKind = Literal[
    "world", "tree", "curation", "mllm", "sasrec", "model_repository", "corpus", "frames", "plans"
]  # fmt: skip
"""The kinds the graph publishes (``KINDS``, in stage order): the choices of ``--until`` and ``--rerun``."""


@dataclass(frozen=True)
class PipelineRun:
    """The options of ``python -m serendip.pipeline``."""

    artifacts: Path = Path("artifacts")
    """artifact root"""
    until: ArtifactKind | None = None
    """build only this kind and what it reads (None: every kind)"""
    rerun: Annotated[tuple[ArtifactKind, ...], tyro.conf.UseAppendAction] = ()
    """run this kind's stage even when its output is reusable; later stages follow"""
    engine: EngineKind = EngineKind.TORCH
    """build-engines engine"""
    device: Literal["cpu", "cuda"] = "cpu"
    """build-engines device"""
    seqrec_format: SeqrecFormat = "torchscript"
    """build-engines seqrec format: TorchScript, or the torch.export AOTInductor package"""
    preset: Literal["demo", "small"] = "demo"
    """sizes"""
    rebuild: bool = False
    """run every stage even when its output is reusable"""
    quiet: bool = False
    """no progress bars"""


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Run the graph and list what it built or reused."""
    options = parse_config(PipelineRun, argv, __doc__, "python -m serendip.pipeline")
    config = {"demo": DEMO, "small": SMALL}[options.preset]
    repository = replace(
        config.repository, engine=options.engine, device=options.device, seqrec_format=options.seqrec_format
    )
    config = replace(config, repository=repository, quiet=options.quiet or config.quiet)
    built = run_pipeline(options.artifacts, config, options.until, options.rebuild, log=_print, rerun=options.rerun)
    for kind, path in built.items():
        print(f"  {kind:<17}{path}")
    return built


if __name__ == "__main__":
    main()
