"""The stage graph: world -> tree -> curation -> MLLM, SASRec -> model repository -> corpus -> frames -> plans.

Every stage is a job (its CLI can be run alone) that publishes one artifact kind. :func:`run_pipeline` runs the
stages in order and reuses a stage's newest output when it was built from the very versions the stage would
read now (its manifest's input records match them); otherwise, or with ``rebuild``, the stage runs. ``make
demo``, ``make data``, the benchmarks and the test fixtures all build their artifacts through this graph, with a
:class:`PipelineConfig` preset (``DEMO``, ``SMALL``) or their own sizes.

``python -m serendip.pipeline --until tree`` builds a kind and what it reads; ``--rerun tree`` runs that stage even
when its output is reusable. The Makefile's stage targets (``make world``, ``tree``, ``curate``, ``train-mllm``,
``train-sasrec``, ``build-engines``, ``batch-plans``, ``data``) are such calls.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ray_jobs import batch_plans, decode_frames
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.corpus import CORPUS_KIND
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.plans import PLANS_KIND
from serendip.artifacts.sasrec import SASREC_KIND
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.errors import ArtifactError
from serendip.jobs import build_tree, curate, make_world, popular_corpus, train_mllm, train_sasrec
from triton_models import build_engines


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes and budgets of one run; ``None`` keeps the job's own default."""

    items: int | None = None
    users: int | None = None
    branching: str | None = None
    seed: int | None = None
    world_options: tuple[str, ...] = ()
    """Further ``make_world`` flags, e.g. ``("--frame-size", "32")``."""
    curate_variants: str | None = None
    curate_frame_counts: str | None = None
    mllm_variant: str = "video_cot"
    mllm_frames: str = "4"
    mllm_steps: int | None = None
    mllm_minutes: float | None = None
    mllm_batch_size: int | None = None
    mllm_heldout_limit: int | None = None
    mllm_checkpoint_every: int | None = None
    sasrec_epochs: int | None = None
    mllm_queue_delay_us: int | None = None
    engine: str = "torch"
    """``make build-engines ENGINE=``: torch or tensorrt_llm."""
    device: str = "cpu"
    """``make build-engines DEVICE=``: cpu or cuda."""
    quiet: bool = False


DEMO = PipelineConfig(mllm_minutes=6.0, sasrec_epochs=20)
"""``make demo``: the 2,000-item world, every prompt variant curated, a 6-minute MLLM budget."""
SMALL = PipelineConfig(
    items=200,
    users=300,
    branching="2,2,3,2",
    seed=7,
    curate_variants="video_cot",
    curate_frame_counts="2",
    mllm_frames="2",
    mllm_steps=4,
    mllm_batch_size=4,
    mllm_heldout_limit=4,
    mllm_checkpoint_every=4,
    sasrec_epochs=2,
    mllm_queue_delay_us=2000,
    quiet=True,
)
"""Test size: 200 items, an MLLM of 4 steps; the whole graph in about a minute."""


def _flags(**options: object) -> list[str]:
    """``--name value`` for every option that is not None (underscores become dashes)."""
    return [
        part
        for name, value in options.items()
        if value is not None
        for part in (f"--{name.replace('_', '-')}", str(value))
    ]


def _common(root: Path, config: PipelineConfig) -> list[str]:
    return ["--artifacts", str(root), *(["--quiet"] if config.quiet else [])]


def _world(root: Path, config: PipelineConfig, _: dict[str, Path]) -> object:
    sizes = _flags(items=config.items, users=config.users, branching=config.branching, seed=config.seed)
    return make_world.main([*sizes, *config.world_options, *_common(root, config)])


def _tree(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    return build_tree.main(["--world", str(inputs[WORLD_KIND]), *_common(root, config)])


def _curation(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    options = _flags(variants=config.curate_variants, frame_counts=config.curate_frame_counts)
    sources = ["--world", str(inputs[WORLD_KIND]), "--tree", str(inputs[TREE_KIND])]
    return curate.main([*sources, *options, *_common(root, config)])


def _mllm(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    options = _flags(
        variant=config.mllm_variant,
        frames=config.mllm_frames if config.mllm_variant != "text_only" else None,
        steps=config.mllm_steps,
        max_minutes=config.mllm_minutes,
        batch_size=config.mllm_batch_size,
        heldout_limit=config.mllm_heldout_limit,
        checkpoint_every=config.mllm_checkpoint_every,
    )
    return train_mllm.main(["--curation", str(inputs[CURATION_KIND]), *options, *_common(root, config)])


def _sasrec(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    options = _flags(epochs=config.sasrec_epochs)
    return train_sasrec.main(["--data", str(inputs[WORLD_KIND]), *options, "--artifacts", str(root)])


def _repository(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = ["--mllm", str(inputs[MLLM_KIND]), "--sasrec", str(inputs[SASREC_KIND])]
    return build_engines.main(
        [*sources, *_flags(mllm_queue_delay_us=config.mllm_queue_delay_us), "--artifacts", str(root)]
    )


def _corpus(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    return popular_corpus.main(["--world", str(inputs[WORLD_KIND]), *_common(root, config)])


def _frames(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = ["--world", str(inputs[WORLD_KIND]), "--corpus", str(inputs[CORPUS_KIND])]
    return decode_frames.main([*sources, "--mllm", str(inputs[MLLM_KIND]), *_common(root, config)])


def _plans(root: Path, config: PipelineConfig, inputs: dict[str, Path]) -> object:
    sources = ["--frame-store", str(inputs[FRAMES_KIND]), "--mllm", str(inputs[MLLM_KIND])]
    return batch_plans.main([*sources, *_common(root, config)])


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
    """True when ``existing`` was built from exactly the versions in ``inputs`` (per the stage's recorded inputs)."""
    records = read_manifest(existing).get("inputs", {})
    for record_name, kind in stage.recorded.items():
        record = records.get(record_name)
        if (
            not isinstance(record, dict)
            or record.get("content_sha256") != read_manifest(inputs[kind])["content_sha256"]
        ):
            return False
    return True


def stages_for(until: str | None) -> tuple[Stage, ...]:
    """The stages that build ``until`` (it and everything it reads, transitively), in graph order; all for None."""
    if until is None:
        return STAGES
    if until not in KINDS:
        raise ValueError(f"until must be one of {', '.join(KINDS)}, got {until!r}")
    by_kind = {stage.kind: stage for stage in STAGES}
    needed, pending = set(), [until]
    while pending:
        kind = pending.pop()
        if kind not in needed:
            needed.add(kind)
            pending += by_kind[kind].reads
    return tuple(stage for stage in STAGES if stage.kind in needed)


def run_pipeline(
    root: Path,
    config: PipelineConfig,
    until: str | None = None,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
    rerun: Sequence[str] = (),
) -> dict[str, Path]:
    """Run (or reuse) the stages that build ``until`` (every stage for None); returns kind -> version dir.

    ``rebuild`` runs every stage; ``rerun`` names kinds whose stage runs even when its output is reusable (the
    stages after it then run too, since their inputs changed).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ray_started = False
    built: dict[str, Path] = {}
    with contextlib.ExitStack() as ray:
        for stage in stages_for(until):
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifact root (default: %(default)s)"
    )
    parser.add_argument("--until", choices=KINDS, help="build only this kind and what it reads (default: every kind)")
    parser.add_argument(
        "--rerun",
        choices=KINDS,
        action="append",
        default=[],
        help="run this kind's stage even when its output is reusable (repeatable); later stages follow",
    )
    parser.add_argument("--engine", choices=("torch", "tensorrt_llm"), default="torch", help="build-engines engine")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="build-engines device")
    parser.add_argument("--preset", choices=("demo", "small"), default="demo", help="sizes (default: %(default)s)")
    parser.add_argument("--rebuild", action="store_true", help="run every stage even when its output is reusable")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Run the graph and list what it built or reused."""
    args = parse_args(argv)
    config = {"demo": DEMO, "small": SMALL}[args.preset]
    config = dataclasses.replace(config, engine=args.engine, device=args.device, quiet=args.quiet or config.quiet)
    built = run_pipeline(args.artifacts, config, args.until, args.rebuild, log=_print, rerun=args.rerun)
    for kind, path in built.items():
        print(f"  {kind:<17}{path}")
    return built


if __name__ == "__main__":
    main()
