"""The plan table the Planner serves from: memory-mapped ``plans.arrow``, and versions that only have parquet."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from planner.plan_watcher import PlanTableWatcher
from serendip.artifacts import plan_index
from serendip.artifacts.plans import (
    PLANS_FILE,
    PLANS_KIND,
    SERVING_FILE,
    CachedCluster,
    PlanTable,
    plan_rows,
    publish_plan_table,
)
from serendip.artifacts.store import ArtifactWriter

PLANS = {
    "v0000001": [("c3-001", -0.5, "street food at night"), ("c3-007", -1.5, None), ("c3-002", -2.0, "more")],
    "v0000002": [("c3-004", -0.1, "watercolour")],
    "vidéo-é": [("c3-009", 0.25, "non-ASCII id and reasoning: café"), ("c3-001", -3.0, "")],
}


def _rows(shuffle_seed: int = 0) -> list[dict]:
    rows = [row for item_id, clusters in PLANS.items() for row in plan_rows(item_id, clusters)]
    random.Random(shuffle_seed).shuffle(rows)
    return rows


def _expected(item_id: str) -> list[CachedCluster]:
    return [CachedCluster(cluster_id, score, reasoning or "") for cluster_id, score, reasoning in PLANS[item_id]]


def _assert_serves_plans(table: PlanTable) -> None:
    assert len(table) == len(PLANS) and set(table) == set(PLANS)
    for item_id in PLANS:
        assert table.get(item_id) == _expected(item_id)
    assert table.get("v9999999") == [] and table.get("") == []


def test_publish_then_load_round_trips_in_rank_order(tmp_path: Path) -> None:
    version = publish_plan_table(tmp_path, _rows(), {"run": 1})
    assert (version / SERVING_FILE).is_file()
    table = PlanTable.load(tmp_path)
    assert table.version == version.name
    _assert_serves_plans(table)
    parquet = pd.read_parquet(version / PLANS_FILE)  # other jobs still read the rows
    assert len(parquet) == sum(len(clusters) for clusters in PLANS.values())
    _assert_serves_plans(PlanTable.from_frame(parquet, "frame"))


def test_version_published_before_plans_arrow_still_loads(tmp_path: Path) -> None:
    with ArtifactWriter(tmp_path, PLANS_KIND, {"run": "legacy"}) as writer:
        pd.DataFrame(_rows()).to_parquet(writer.dir / PLANS_FILE, index=False)
    assert not (writer.final_dir / SERVING_FILE).exists()
    _assert_serves_plans(PlanTable.load(tmp_path))


def test_serving_file_keyed_with_another_scheme_falls_back_to_parquet(tmp_path: Path) -> None:
    version = publish_plan_table(tmp_path, _rows(), {"run": 1})
    serving = pa.ipc.open_file(pa.memory_map(str(version / SERVING_FILE))).get_batch(0)
    foreign = serving.replace_schema_metadata({b"serendip.item_key": b"another-hash"})
    with pa.OSFile(str(version / SERVING_FILE), "wb") as sink, pa.ipc.new_file(sink, foreign.schema) as writer:
        writer.write_batch(foreign)
    _assert_serves_plans(PlanTable.load(tmp_path))


def test_colliding_keys_are_told_apart_by_item_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_index, "item_key", lambda encoded_item_id: 42)
    publish_plan_table(tmp_path, _rows(), {"run": 1})
    _assert_serves_plans(PlanTable.load(tmp_path))


def test_item_key_is_pinned() -> None:
    """Files written by one process are read by others: the key is a fixed function of the id's bytes."""
    assert plan_index.item_key(b"v0001234") == 6416301692203276446  # on-disk contract: never change silently


def test_empty_table_loads(tmp_path: Path) -> None:
    publish_plan_table(tmp_path, [], {"run": 1})
    table = PlanTable.load(tmp_path)
    assert len(table) == 0 and table.get("v0000001") == [] and list(table) == []


def test_watcher_swaps_from_a_legacy_version_to_a_mapped_one(tmp_path: Path) -> None:
    with ArtifactWriter(tmp_path, PLANS_KIND, {"run": "legacy"}) as writer:
        pd.DataFrame(plan_rows("v0000001", [("c3-000", -1.0, "old")])).to_parquet(writer.dir / PLANS_FILE, index=False)
    watcher = PlanTableWatcher(tmp_path / PLANS_KIND)
    assert watcher.reload_if_changed()
    old_table = watcher.table
    publish_plan_table(tmp_path, _rows(3), {"run": 2})
    assert watcher.reload_if_changed()
    _assert_serves_plans(watcher.table)
    assert old_table.get("v0000001") == [CachedCluster("c3-000", -1.0, "old")]  # readers of the old version


def test_memo_of_decoded_plans_stays_bounded_and_correct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More items asked for than the memo holds: it empties itself and every answer stays the item's own."""
    monkeypatch.setattr("serendip.artifacts.plans.MEMO_ITEMS", 2)
    publish_plan_table(tmp_path, _rows(), {"run": 1})
    table = PlanTable.load(tmp_path)
    for _ in range(3):
        for item_id in PLANS:
            assert table.get(item_id) == _expected(item_id)
            assert len(table._memo) <= 2
