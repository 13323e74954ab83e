"""Every job's command line is generated from its config dataclass: ``--help`` lists each field, and the flag lines
the Makefile, the docs and the tests type parse into the config that ``run`` would be called with."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

import pytest

from ray_jobs import batch_plans, decode_frames
from serendip import pipeline
from serendip.jobs import (
    build_tree,
    curate,
    evaluate,
    make_world,
    mllm_ablations,
    popular_corpus,
    train_mllm,
    train_sasrec,
)
from serendip.models.mllm.prompts import PromptVariant
from triton_models import build_engines
from triton_models.engines import EngineKind

JOBS: dict[ModuleType, type] = {
    make_world: make_world.MakeWorldJob,
    build_tree: build_tree.BuildTreeJob,
    curate: curate.CurateJob,
    train_mllm: train_mllm.TrainMllmJob,
    train_sasrec: train_sasrec.TrainSasrecJob,
    popular_corpus: popular_corpus.PopularCorpusJob,
    evaluate: evaluate.EvaluateJob,
    mllm_ablations: mllm_ablations.MllmAblationsJob,
    decode_frames: decode_frames.DecodeFramesJob,
    batch_plans: batch_plans.BatchPlansJob,
    build_engines: build_engines.BuildEnginesJob,
}


@pytest.mark.parametrize("job", list(JOBS), ids=lambda job: job.__name__)
def test_help_lists_every_field(
    job: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        job.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"python -m {job.__name__}" in text
    assert job.__doc__.split("\n")[0].split(": ", 1)[1][:40] in text  # the module docstring is the description
    for field in dataclasses.fields(JOBS[job]):
        assert f"--{field.name.replace('_', '-')}" in text


CASES = [
    (
        make_world,
        "--items 96 --users 150 --branching 2,2,2,2 --frame-size 32 --num-frames 8 --with-taxonomy --no-video "
        "--workers 1 --artifacts root --quiet",
        make_world.MakeWorldJob(
            items=96,
            users=150,
            branching=(2, 2, 2, 2),
            frame_size=32,
            num_frames=8,
            with_taxonomy=True,
            video=False,
            workers=1,
            artifacts=Path("root"),
            quiet=True,
        ),
    ),
    (
        build_tree,
        "--items items.parquet --method kmeans --branching 3,3,4,2 --balance-by traffic",
        build_tree.BuildTreeJob(
            items=Path("items.parquet"), method="kmeans", branching=(3, 3, 4, 2), balance_by="traffic"
        ),
    ),
    (
        curate,
        "--world w --tree t --top-k 3 --variants video_cot,text_only --frame-counts 1,4 --no-thumbnail --quiet",
        curate.CurateJob(
            world=Path("w"),
            tree=Path("t"),
            top_k=3,
            variants=("video_cot", "text_only"),
            frame_counts=(1, 4),
            thumbnail=False,
            quiet=True,
        ),
    ),
    (
        train_mllm,
        "--curation c --variant text_only --steps 4 --batch-size 4 --heldout-limit 4 --checkpoint-every 4 "
        "--max-minutes 6 --base-model /models/qwen --device cuda",
        train_mllm.TrainMllmJob(
            curation=Path("c"),
            variant=PromptVariant.TEXT_ONLY,
            steps=4,
            batch_size=4,
            heldout_limit=4,
            checkpoint_every=4,
            max_minutes=6.0,
            base_model=Path("/models/qwen"),
            device="cuda",
        ),
    ),
    (
        train_sasrec,
        "--data artifacts/world --epochs 2 --artifacts root",
        train_sasrec.TrainSasrecJob(data=Path("artifacts/world"), epochs=2, artifacts=Path("root")),
    ),
    (
        popular_corpus,
        "--world w --coverage 0.8 --artifacts root",
        popular_corpus.PopularCorpusJob(world=Path("w"), coverage=0.8, artifacts=Path("root")),
    ),
    (
        evaluate,
        "--artifacts a --text-only-mllm t --oracle-arm --users 300 --resamples 200 --bandit-scope siblings",
        evaluate.EvaluateJob(
            artifacts=Path("a"),
            text_only_mllm=Path("t"),
            oracle_arm=True,
            users=300,
            resamples=200,
            bandit_scope="siblings",
        ),
    ),
    (
        evaluate,
        "--replay my_logs/ --items items.parquet --tree artifacts/tree",
        evaluate.EvaluateJob(replay=Path("my_logs"), items=Path("items.parquet"), tree=Path("artifacts/tree")),
    ),
    (
        mllm_ablations,
        "--curation artifacts/curation --threads 1 --checkpoint-every 80 --figures fig3_prompt,fig5_thumbnail",
        mllm_ablations.MllmAblationsJob(
            curation=Path("artifacts/curation"),
            threads=1,
            checkpoint_every=80,
            figures=("fig3_prompt", "fig5_thumbnail"),
        ),
    ),
    (
        decode_frames,
        "--items i.parquet --all-items --mllm m --frames 4 --image-size 64 --shard-size 8 --workers 1 --quiet",
        decode_frames.DecodeFramesJob(
            items=Path("i.parquet"),
            all_items=True,
            mllm=Path("m"),
            frames=4,
            image_size=64,
            shard_size=8,
            workers=1,
            quiet=True,
        ),
    ),
    (
        batch_plans,
        "--mllm m --shard-size 2 --workers 1 --address 127.0.0.1:6379 --full --engine tensorrt_llm",
        batch_plans.BatchPlansJob(
            mllm=Path("m"), shard_size=2, workers=1, address="127.0.0.1:6379", full=True, engine="tensorrt_llm"
        ),
    ),
    (
        build_engines,
        "--mllm m --sasrec s --engine tensorrt_llm --device cuda --mllm-queue-delay-us 2000 "
        "--seqrec-queue-delay-us 2000 --seqrec-preferred-batch-sizes 8,16,32",
        build_engines.BuildEnginesJob(
            mllm=Path("m"),
            sasrec=Path("s"),
            engine=EngineKind.TENSORRT_LLM,
            device="cuda",
            mllm_queue_delay_us=2000,
            seqrec_queue_delay_us=2000,
            seqrec_preferred_batch_sizes=(8, 16, 32),
        ),
    ),
]


@pytest.mark.parametrize(("job", "flags", "expected"), CASES, ids=lambda case: getattr(case, "__name__", None))
def test_main_runs_the_config_the_flags_name(
    job: ModuleType, flags: str, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job, "run", lambda config: config)
    assert job.main(flags.split()) == expected


@pytest.mark.parametrize(
    "flags",
    [
        "--world w --items i",  # one catalogue, not both
        "--all-items --corpus c",
        "--shard-size 0",
        "--frames four",
    ],
)
def test_bad_options_exit_with_usage(flags: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        decode_frames.main(flags.split())
    assert exit_info.value.code == 2


@pytest.mark.parametrize("sizes", ["8,100", "0"])
def test_preferred_batch_sizes_beyond_seqrec_max_batch_exit_with_usage(sizes: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_engines.main(["--seqrec-preferred-batch-sizes", sizes])
    assert exit_info.value.code == 2


def test_pipeline_command_lines_of_the_makefile(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *args, **options: calls.append((args, options)) or {})
    pipeline.main("--artifacts a --until plans --rerun corpus --rerun frames --rerun plans".split())
    pipeline.main(
        "--until model_repository --rerun model_repository --engine tensorrt_llm --device cuda "
        "--seqrec-format export".split()
    )
    pipeline.main("--preset small --until tree --quiet".split())
    (root, demo, until, rebuild), options = calls[0]
    assert (root, until, rebuild, options["rerun"]) == (Path("a"), "plans", False, ("corpus", "frames", "plans"))
    assert demo == pipeline.DEMO
    (_, config, until, _), options = calls[1]
    repository = config.repository
    assert (repository.engine, repository.device, repository.seqrec_format, options["rerun"]) == (
        EngineKind.TENSORRT_LLM,
        "cuda",
        "export",
        ("model_repository",),
    )
    (_, config, until, _), _ = calls[2]
    assert config == pipeline.SMALL and until == "tree"


def test_the_kinds_of_the_command_line_are_the_graphs() -> None:
    from typing import get_args

    assert get_args(pipeline.ArtifactKind) == pipeline.KINDS
