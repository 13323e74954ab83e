"""``python -m serendip.pipeline_user``: the import, stage reuse against an imported catalogue, its options, and
(slow) the whole run on a tiny thumbnail-only world, ending in one served Recommend."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.store import ArtifactWriter, file_sha256, resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cli import parse_config
from serendip.core.errors import DataError
from serendip.pipeline import PipelineConfig, Stage, run_pipeline
from serendip.pipeline_user import (
    ImportResult,
    UserPipelineJob,
    import_catalogue,
    pipeline_config,
    quality_summary,
    visual_input,
)


def _tables(directory: Path, thumbnail: str | None = "thumbs/a.jpg") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["one", "two"], "thumbnail_path": [thumbnail, "/abs/b.jpg"]})
    interactions = pd.DataFrame(
        {
            "user_id": ["u", "u"],
            "item_id": ["a", "b"],
            "ts": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"]),
            "satisfaction": [0.9, 0.4],
        }
    )
    items.to_parquet(directory / "items.parquet", index=False)
    interactions.to_parquet(directory / "interactions.parquet", index=False)
    return directory / "items.parquet", directory / "interactions.parquet"


def test_import_makes_media_paths_absolute_and_is_idempotent(tmp_path: Path) -> None:
    items, interactions = _tables(tmp_path / "mine")
    root = tmp_path / "root"
    first = import_catalogue(items, interactions, root, log=lambda _: None)
    assert first.changed == ("items.parquet", "interactions.parquet") and first.items == 2
    imported = pd.read_parquet(root / "items.parquet")
    assert list(imported["thumbnail_path"]) == [str((tmp_path / "mine" / "thumbs/a.jpg").resolve()), "/abs/b.jpg"]
    assert file_sha256(root / "interactions.parquet") == file_sha256(interactions)
    assert import_catalogue(items, interactions, root, log=lambda _: None).changed == ()
    media = tmp_path / "media"
    assert import_catalogue(items, interactions, root, media, log=lambda _: None).changed == ("items.parquet",)
    assert pd.read_parquet(root / "items.parquet")["thumbnail_path"][0] == str(media.resolve() / "thumbs/a.jpg")


def test_import_refuses_a_root_with_a_world_and_a_missing_column(tmp_path: Path) -> None:
    items, interactions = _tables(tmp_path / "mine")
    (tmp_path / "root" / WORLD_KIND).mkdir(parents=True)
    with pytest.raises(DataError, match="holds a synthetic world"):
        import_catalogue(items, interactions, tmp_path / "root", log=lambda _: None)
    pd.read_parquet(items).drop(columns="title").to_parquet(items)
    with pytest.raises(DataError, match="title"):
        import_catalogue(items, interactions, tmp_path / "other", log=lambda _: None)
    with pytest.raises(DataError, match="no such file"):
        import_catalogue(tmp_path / "absent.parquet", interactions, tmp_path / "other", log=lambda _: None)


def test_visual_input_follows_the_media() -> None:
    def result(videos: int, thumbnails: int) -> ImportResult:
        return ImportResult(10, 10, videos, thumbnails, ())

    assert visual_input("auto", result(3, 10)) == "4"
    assert visual_input("auto", result(0, 10)) == "thumbnail"
    assert visual_input("auto", result(0, 0)) == "4"  # no media: train_mllm trains text_only
    assert visual_input("2", result(0, 10)) == "2"


def test_options_reach_the_stage_configs() -> None:
    job = parse_config(
        UserPipelineJob,
        ["--items", "i.parquet", "--interactions", "x.parquet", "--mllm-steps", "60", "--branching", "2,2,3,2",
         "--rerun", "tree", "--rerun", "mllm", "--no-serve-check"],
        None,
        "test",
    )  # fmt: skip
    assert job.rerun == ("tree", "mllm") and not job.serve_check
    config = pipeline_config(job, "thumbnail")
    assert (config.mllm.steps, config.mllm.frames, config.tree.branching) == (60, "thumbnail", (2, 2, 3, 2))
    assert config.sasrec.epochs == job.sasrec_epochs


@pytest.mark.parametrize(
    "argv",
    [
        ["--interactions", "x.parquet"],  # --items is required
        ["--items", "i", "--interactions", "x", "--mllm-steps", "0"],
        ["--items", "i", "--interactions", "x", "--rerun", "world"],  # the world is imported, never built
    ],
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_config(UserPipelineJob, argv, None, "test")
    assert stop.value.code == 2


# --- stage reuse against an imported catalogue (fake stages, the real graph runner) ---------------------------
@dataclass
class _Runs:
    count: dict[str, int]


def _stages(runs: _Runs) -> tuple[Stage, ...]:
    """A table stage recording the catalogue's tables by hash, and one recording only the root's path."""

    def by_hash(root: Path, _: PipelineConfig, inputs: dict[str, Path]) -> object:
        runs.count["hashed"] += 1
        files = {name: inputs[WORLD_KIND] / f"{name}.parquet" for name in ("items", "interactions")}
        records = {name: {"path": str(path), "sha256": file_sha256(path)} for name, path in files.items()}
        with ArtifactWriter(root, "hashed", {}, inputs=records):
            pass
        return None

    def by_path(root: Path, _: PipelineConfig, inputs: dict[str, Path]) -> object:
        runs.count["pathed"] += 1
        with ArtifactWriter(root, "pathed", {}, inputs={"data": str(inputs[WORLD_KIND])}):
            pass
        return None

    catalogue = {"items": WORLD_KIND, "interactions": WORLD_KIND}
    return (
        Stage("hashed", "hashed", (WORLD_KIND,), by_hash, catalogue),
        Stage("pathed", "pathed", (WORLD_KIND,), by_path, {"data": WORLD_KIND}),
    )


def test_stages_rerun_only_when_the_imported_tables_change(tmp_path: Path) -> None:
    items, interactions = _tables(tmp_path / "mine")
    root = tmp_path / "root"
    runs = _Runs({"hashed": 0, "pathed": 0})

    def build(**options: object) -> dict[str, Path]:
        import_catalogue(items, interactions, root, log=lambda _: None)
        return run_pipeline(
            root, PipelineConfig(), stages=_stages(runs), sources={WORLD_KIND: root}, log=lambda _: None, **options
        )  # type: ignore[arg-type]

    built = build()
    assert runs.count == {"hashed": 1, "pathed": 1} and built["hashed"] == resolve_artifact(root, "hashed")
    build()
    assert runs.count == {"hashed": 1, "pathed": 1}  # same tables: both reused
    build(rerun=("pathed",))
    assert runs.count == {"hashed": 1, "pathed": 2}
    build(until="hashed")
    assert runs.count == {"hashed": 1, "pathed": 2}
    pd.read_parquet(interactions).assign(satisfaction=0.5).to_parquet(interactions, index=False)
    build()
    assert runs.count == {"hashed": 2, "pathed": 3}
    later = os.stat(root / "interactions.parquet").st_mtime + 5  # the tables changed after the last publication
    os.utime(root / "interactions.parquet", (later, later))
    build()
    assert runs.count == {"hashed": 2, "pathed": 4}  # the path-only record is stale; the hashed one is not


def test_quality_summary_reads_each_report(tmp_path: Path) -> None:
    (tmp_path / "sasrec").mkdir()
    (tmp_path / "sasrec" / "metrics.json").write_text('{"sasrec": {"recall@10": 0.5}, "popularity": {}}')
    (tmp_path / "mllm").mkdir()
    (tmp_path / "mllm" / "metrics.json").write_text('{"model": {"recall": 0.25, "candidate_recall@1": 0.4}}')
    lines = quality_summary({"sasrec": tmp_path / "sasrec", "mllm": tmp_path / "mllm"})
    assert "recall@10 0.500 (popularity n/a" in lines[1]
    assert "recall 0.250" in lines[0] and "candidate_recall@1 0.400" in lines[0]


# --- end to end ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_whole_run_on_a_thumbnail_world_ends_in_a_recommend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from serendip.jobs import make_world
    from serendip.pipeline_user import main

    world = make_world.run(
        make_world.MakeWorldJob(
            preset="thumbnail", items=120, users=150, branching=(2, 2, 3, 2), seed=3, fresh_uploads=0,
            artifacts=tmp_path / "synthetic", quiet=True,
        )
    )  # fmt: skip
    argv = ["--items", str(world / "items.parquet"), "--interactions", str(world / "interactions.parquet"),
            "--artifacts", str(tmp_path / "mine"), "--mllm-steps", "4", "--branching", "2,2,3,2",
            "--sasrec-epochs", "2", "--quiet"]  # fmt: skip
    built = main(argv)
    out = capsys.readouterr().out
    assert "MLLM visual input: thumbnail" in out
    assert "Recommend for " in out and "    -> " in out
    assert "candidate_recall@1" in out and "SASRec: recall@10" in out and "context items planned" in out
    assert set(built) >= {"tree", "curation", "mllm", "sasrec", "model_repository", "plans"}
    main([*argv, "--no-serve-check"])
    assert "MLLM fine-tuning: reusing" in capsys.readouterr().out
