"""Loading bring-your-own parquet files: every bad row is counted under its reason, never crashes the load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.core.errors import SchemaError
from serendip.core.schema import IMPRESSIONS_COUNTED, IMPRESSIONS_UNIFORM, load_dataset, load_items, validate_items


@pytest.fixture
def bad_files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"\x00")  # existence is checked on load, decoding later
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", None, "a", "c", "d", "e"],
            "title": ["first", "second", "no id", "dup", "negative", "ghost video", None],
            "video_path": ["videos/a.mp4", None, None, None, None, "videos/missing.mp4", None],
            "impressions": [10, 5, 3, 3, -1, 7, 2],
            "created_at": ["2026-01-02", None, None, None, None, "yesterday-ish", None],
            "taxonomy": [["w", "x", "y", "z"], None, None, None, None, None, ["too", "short"]],
        }
    )
    items.to_parquet(tmp_path / "items.parquet")
    # valid items after load: a, b, d (video cleared), e (taxonomy cleared, title '')
    interactions = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u4", "", "u5", "u5", "u6"],
            "item_id": ["a", "b", "d", "e", "zzz", "c", "a", "b", "a", "b", "a"],
            "ts": ["2026-01-01T00:00:00Z"] * 9 + ["not a time", "2026-01-01T00:05:00Z"],
            "satisfaction": [0.5, 1.0, 0.0, 0.9, 0.5, 0.5, 1.5, 0.5, -0.1, 0.5, np.nan],
            "context_item_id": [None, "a", None, "d", None, None, None, None, "nope", None, None],
        }
    )
    interactions.to_parquet(tmp_path / "interactions.parquet")
    return tmp_path / "items.parquet", tmp_path / "interactions.parquet"


def test_bad_rows_are_counted_exactly(bad_files: tuple[Path, Path]) -> None:
    dataset = load_dataset(*bad_files)
    items_report, interactions_report = dataset.items_report, dataset.interactions_report
    assert items_report.reason_counts == {
        "missing_item_id": 1,
        "duplicate_item_id": 1,
        "invalid_impressions": 1,
        "missing_video_file": 1,
        "invalid_created_at": 1,
        "invalid_taxonomy": 1,
        "missing_title": 1,
    }
    assert (items_report.rows_total, items_report.rows_kept, items_report.rows_dropped) == (7, 4, 3)
    assert dataset.items["item_id"].tolist() == ["a", "b", "d", "e"]
    assert dataset.items.set_index("item_id").at["d", "video_path"] is None
    assert dataset.items["video_path"].iloc[0] == str(bad_files[0].parent / "videos" / "a.mp4")

    assert interactions_report.reason_counts == {
        "unknown_item": 2,  # zzz, and c (dropped from items for its negative impressions)
        "satisfaction_out_of_range": 2,
        "missing_satisfaction": 1,
        "missing_user_id": 1,
        "unknown_context_item": 1,
        "invalid_ts": 1,
    }
    assert (interactions_report.rows_total, interactions_report.rows_kept) == (11, 4)
    assert dataset.interactions["satisfaction"].between(0, 1).all()
    bad_rows = interactions_report.bad_rows
    assert bad_rows.loc[bad_rows["reason"] == "satisfaction_out_of_range", "row"].tolist() == [6, 8]


def test_report_is_json_ready_with_actions_and_examples(bad_files: tuple[Path, Path]) -> None:
    summary = load_dataset(*bad_files).items_report.to_dict()
    assert summary["reasons"]["duplicate_item_id"] == {
        "count": 1,
        "action": "dropped",
        "meaning": "item_id already seen in an earlier row (first row kept)",
        "example_rows": [3],
    }
    assert summary["reasons"]["missing_video_file"]["action"] == "repaired"


def test_missing_required_column_is_a_schema_error(tmp_path: Path) -> None:
    pd.DataFrame({"item_id": ["a"], "impressions": [1]}).to_parquet(tmp_path / "items.parquet")
    with pytest.raises(SchemaError, match=r"lacks required column\(s\) \['title'\]"):
        load_items(tmp_path / "items.parquet")
    with pytest.raises(SchemaError, match="does not exist"):
        load_items(tmp_path / "absent.parquet")


def test_tags_are_optional_lists_of_strings(tmp_path: Path) -> None:
    pd.DataFrame({"item_id": ["a"], "title": ["t"], "impressions": [1]}).to_parquet(tmp_path / "old.parquet")
    old, report = load_items(tmp_path / "old.parquet")
    assert old["tags"].tolist() == [[]] and not report.reason_counts  # files without tags stay valid
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["t"] * 4,
            "impressions": [1] * 4,
            "tags": [[" Sci-Fi ", "drama", ""], None, [], ["ok"]],
        }
    )
    items.to_parquet(tmp_path / "items.parquet")
    loaded, report = load_items(tmp_path / "items.parquet")
    assert loaded["tags"].tolist() == [["Sci-Fi", "drama"], [], [], ["ok"]]
    assert not report.reason_counts
    repaired, report = validate_items(items.assign(tags=[["x"], "not a list", [1, 2], None]))
    assert report.count("invalid_tags") == 2 and repaired["tags"].tolist() == [["x"], [], [], []]


def test_summary_is_one_line_per_table(bad_files: tuple[Path, Path]) -> None:
    dataset = load_dataset(*bad_files)
    assert dataset.items_report.summary() == (
        "items: 7 rows, 3 dropped (duplicate_item_id: 1, invalid_impressions: 1, missing_item_id: 1), "
        "2 repaired (invalid_created_at: 1, invalid_taxonomy: 1, missing_title: 1, missing_video_file: 1)"
    )
    assert dataset.interactions_report.summary().startswith("interactions: 11 rows, 7 dropped (invalid_ts: 1, ")


def test_impressions_are_counted_from_interactions_when_absent(tmp_path: Path) -> None:
    pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["t"] * 3}).to_parquet(tmp_path / "items.parquet")
    interactions = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "item_id": ["a", "b", "a", "zzz"],
            "ts": "2026-01-01",
            "satisfaction": 1.0,
        }
    )
    interactions.to_parquet(tmp_path / "interactions.parquet")
    dataset = load_dataset(tmp_path / "items.parquet", tmp_path / "interactions.parquet")
    assert dataset.items["impressions"].tolist() == [2, 1, 0]  # valid interaction rows only (zzz is dropped)
    assert dataset.items_report.derived == {"impressions": IMPRESSIONS_COUNTED}
    assert dataset.items_report.summary().endswith("; impressions absent, counted from interactions")
    alone, report = load_items(tmp_path / "items.parquet")
    assert alone["impressions"].tolist() == [1, 1, 1] and report.derived == {"impressions": IMPRESSIONS_UNIFORM}
    assert not report.reason_counts
