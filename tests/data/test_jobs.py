"""The three data jobs end to end through their command lines, on a tiny world."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.curation import load_curation
from serendip.artifacts.world import load_world
from serendip.jobs import build_tree, curate, make_world


@pytest.mark.parametrize("job", [make_world, build_tree, curate])
def test_help(job, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        job.main(["--help"])
    assert exit_info.value.code == 0
    assert "--artifacts" in capsys.readouterr().out


def test_world_tree_curation_chain(tmp_path: Path) -> None:
    world_dir = make_world.main(
        ["--items", "96", "--users", "150", "--branching", "2,2,2,2", "--artifacts", str(tmp_path), "--quiet"]
    )
    tree_dir = build_tree.main(["--artifacts", str(tmp_path), "--quiet"])
    curation_dir = curate.main(["--artifacts", str(tmp_path), "--top-k", "3", "--frame-counts", "1,4", "--quiet"])
    assert world_dir.parent == tmp_path / "world" and tree_dir.parent == tmp_path / "tree"
    report = json.loads((tree_dir / "report.json").read_text())
    assert report["method"] == "kmeans" and set(report["levels"]) == {"1", "2", "3", "4"}
    assert not pd.read_parquet(tree_dir / "truth_match.parquet").empty
    loaded = load_curation(tmp_path / "curation")
    assert loaded.dir == curation_dir
    assert loaded.manifest["inputs"]["tree"]["version"] == tree_dir.name
    assert loaded.manifest["inputs"]["world"]["version"] == world_dir.name
    assert sorted(loaded.allowed_descriptions) == sorted(loaded.tree.descriptions(3))
    rows = loaded.sft_examples("train", "video_cot", "4")
    assert len(rows) == loaded.curation.report["examples_kept"]["train"]
    assert set(loaded.curation.sft["frames"]) == {"none", "1", "4", "thumbnail"}
    assert load_world(tmp_path / "world").dir == world_dir


def test_byo_items_with_bad_rows_go_through(tmp_path: Path) -> None:
    world_dir = make_world.main(
        [
            "--items",
            "64",
            "--users",
            "120",
            "--branching",
            "2,2,2,2",
            "--artifacts",
            str(tmp_path),
            "--quiet",
            "--with-taxonomy",
        ]
    )
    items = pd.read_parquet(world_dir / "items.parquet")
    interactions = pd.read_parquet(world_dir / "interactions.parquet")
    interactions.loc[interactions.index[:3], "satisfaction"] = 7.0
    byo = tmp_path / "byo"
    byo.mkdir()
    absolute = items.assign(
        video_path=[str(world_dir / path) for path in items["video_path"]],
        thumbnail_path=[str(world_dir / path) for path in items["thumbnail_path"]],
    )
    absolute.to_parquet(byo / "items.parquet")
    interactions.to_parquet(byo / "interactions.parquet")
    tree_dir = build_tree.main(["--items", str(byo / "items.parquet"), "--artifacts", str(tmp_path), "--quiet"])
    assert json.loads((tree_dir / "report.json").read_text())["method"] == "taxonomy"
    curation_dir = curate.main(
        [
            "--items",
            str(byo / "items.parquet"),
            "--interactions",
            str(byo / "interactions.parquet"),
            "--artifacts",
            str(tmp_path),
            "--top-k",
            "2",
            "--variants",
            "text_only,video_only",
            "--quiet",
        ]
    )
    report = json.loads((curation_dir / "report.json").read_text())
    assert report["inputs"]["interactions"]["reasons"]["satisfaction_out_of_range"]["count"] == 3
    assert len(pd.read_parquet(curation_dir / "bad_rows_interactions.parquet")) == 3
