"""The train_sasrec job's input handling: the world of ``--artifacts``, clean one-line errors, dropped rows recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.store import ArtifactWriter, read_manifest
from serendip.core.errors import ArtifactError
from serendip.jobs import train_sasrec
from tests.retriever.chain_world import chain_interactions

TINY_MODEL = ["--epochs", "1", "--hidden", "16", "--layers", "1", "--heads", "1", "--max-len", "12"]


def _items() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(40)], "title": "t", "impressions": 10})


def _world(root: Path, interactions: pd.DataFrame) -> Path:
    """A minimal world artifact (items and interactions only) under ``root``."""
    with ArtifactWriter(root, "world", {"source": "test"}) as writer:
        _items().to_parquet(writer.dir / "items.parquet", index=False)
        interactions.to_parquet(writer.dir / "interactions.parquet", index=False)
    return writer.final_dir


def test_artifacts_root_alone_trains_on_its_own_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "elsewhere"
    world_dir = _world(root, chain_interactions(num_users=40))
    monkeypatch.chdir(tmp_path)  # no ./artifacts here: the old default would fail or train on another world

    version_dir = train_sasrec.main(["--artifacts", str(root), *TINY_MODEL])

    assert version_dir.parent == root / "sasrec"
    assert read_manifest(version_dir)["inputs"]["data"]["path"] == str(world_dir)
    metrics = json.loads((version_dir / "metrics.json").read_text())
    assert metrics["loss"] == "full" and metrics["sasrec"]["cases"] == 40  # 40 items: auto keeps full softmax


def test_artifacts_root_without_a_world_names_the_world_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"empty/world is not an artifact"):
        train_sasrec.run(train_sasrec.TrainSasrecJob(artifacts=tmp_path / "empty"))


def test_dropped_rows_are_reported_in_the_artifact_and_on_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    interactions = chain_interactions(num_users=40)
    bad = pd.DataFrame(
        {
            "user_id": ["u0", "u1", "u2"],
            "item_id": ["nope", "i01", "i02"],
            "ts": [99, 99, 99],
            "satisfaction": [0.9, 7.0, 0.9],
        }
    )
    bad.loc[2, "user_id"] = None
    world_dir = _world(tmp_path, pd.concat([interactions, bad], ignore_index=True))

    version_dir = train_sasrec.main(["--data", str(world_dir), "--artifacts", str(tmp_path), *TINY_MODEL])

    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("items: "))
    assert "; interactions: 483 rows, 3 dropped (" in line
    assert "missing_user_id: 1" in line and "satisfaction_out_of_range: 1" in line and "unknown_item: 1" in line
    report = json.loads((version_dir / "report.json").read_text())["inputs"]["interactions"]
    assert report["rows_dropped"] == 3 and report["reasons"]["missing_user_id"]["example_rows"] == [482]
    assert len(pd.read_parquet(version_dir / "bad_rows_interactions.parquet")) == 3
    assert read_manifest(version_dir)["counts"]["interactions_dropped"] == 3


def _data_dir(tmp_path: Path, interactions: pd.DataFrame | bytes) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    _items().to_parquet(data / "items.parquet", index=False)
    if isinstance(interactions, bytes):
        (data / "interactions.parquet").write_bytes(interactions)
    else:
        interactions.to_parquet(data / "interactions.parquet", index=False)
    return data


def test_missing_column_stops_the_command_with_one_line_naming_it(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, chain_interactions(num_users=40).drop(columns="satisfaction"))

    command = [sys.executable, "-m", "serendip.jobs.train_sasrec", "--data", str(data), "--artifacts", str(tmp_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr
    assert finished.stderr.startswith("train_sasrec: ") and "satisfaction" in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sasrec").exists()


def test_unreadable_interactions_end_the_command_with_one_line_naming_the_file(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, b"not parquet")
    with pytest.raises(SystemExit) as exit_info:
        train_sasrec.main(["--data", str(data), "--artifacts", str(tmp_path)])
    message = str(exit_info.value.code)
    assert message.startswith("train_sasrec: interactions file ")
    assert "interactions.parquet is not a readable parquet file" in message
    assert "\n" not in message and not (tmp_path / "sasrec").exists()
