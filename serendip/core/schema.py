"""Input schema for bring-your-own data (items.parquet, interactions.parquet) and validation on load.

A table missing a required column raises :class:`SchemaError`. Row-level problems never raise: each bad row is
either dropped (unusable) or repaired (one field cleared), counted per reason in a :class:`BadRowReport`, and
listed in ``report.bad_rows`` (row number, reason, column, value) -- nothing is dropped silently.
``impressions`` may be absent: :func:`load_dataset` then counts each item's rows in the interactions (without
interactions every item gets 1), and the report says so under ``derived``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serendip.core.errors import SchemaError

TAXONOMY_DEPTH = 4

ITEM_COLUMNS: dict[str, bool] = {
    "item_id": True,
    "title": True,
    "description": False,
    "video_path": False,
    "thumbnail_path": False,
    "impressions": False,
    "created_at": False,
    "taxonomy": False,
    "tags": False,
}
"""Item columns and whether each is required."""

INTERACTION_COLUMNS: dict[str, bool] = {
    "user_id": True,
    "item_id": True,
    "ts": True,
    "satisfaction": True,
    "context_item_id": False,
    "session_id": False,
}
"""Interaction columns and whether each is required."""

DROPPED, REPAIRED = "dropped", "repaired"
ITEM_REASONS: dict[str, tuple[str, str]] = {
    "missing_item_id": (DROPPED, "item_id is null or empty"),
    "duplicate_item_id": (DROPPED, "item_id already seen in an earlier row (first row kept)"),
    "invalid_impressions": (DROPPED, "impressions is null, non-numeric or negative"),
    "missing_title": (REPAIRED, "title is null; set to ''"),
    "missing_video_file": (REPAIRED, "video_path names no existing file; video_path cleared"),
    "missing_thumbnail_file": (REPAIRED, "thumbnail_path names no existing file; thumbnail_path cleared"),
    "invalid_created_at": (REPAIRED, "created_at cannot be parsed; set to null"),
    "invalid_taxonomy": (REPAIRED, f"taxonomy is not a list of {TAXONOMY_DEPTH} non-empty labels; cleared"),
    "invalid_tags": (REPAIRED, "tags is not a list of strings; cleared"),
}
INTERACTION_REASONS: dict[str, tuple[str, str]] = {
    "missing_user_id": (DROPPED, "user_id is null or empty"),
    "unknown_item": (DROPPED, "item_id is not a valid item of items.parquet"),
    "invalid_ts": (DROPPED, "ts is null or cannot be parsed as a timestamp"),
    "missing_satisfaction": (DROPPED, "satisfaction is null, NaN or non-numeric"),
    "satisfaction_out_of_range": (DROPPED, "satisfaction is outside [0, 1]"),
    "unknown_context_item": (DROPPED, "context_item_id is set but not a valid item"),
}
EXAMPLE_ROWS_PER_REASON = 5
IMPRESSIONS_UNIFORM = "absent, 1 per item (no interactions to count)"
IMPRESSIONS_COUNTED = "absent, counted from interactions"
"""How ``impressions`` is filled when items.parquet has no such column (``BadRowReport.derived``)."""


@dataclass
class BadRowReport:
    """Counts of bad rows per reason for one loaded table, with the action taken for each reason."""

    table: str
    source: str
    rows_total: int = 0
    rows_kept: int = 0
    reason_counts: dict[str, int] = field(default_factory=dict)
    bad_rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "reason", "column", "value"]))
    derived: dict[str, str] = field(default_factory=dict)
    """Columns absent from the file and how they were filled."""

    @property
    def rows_dropped(self) -> int:
        """Rows removed from the table."""
        return self.rows_total - self.rows_kept

    def count(self, reason: str) -> int:
        """Number of rows flagged with ``reason`` (0 if none)."""
        return self.reason_counts.get(reason, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: totals, and per reason its count, action, meaning and example rows."""
        catalogue = ITEM_REASONS if self.table == "items" else INTERACTION_REASONS
        reasons = {}
        for reason, count in sorted(self.reason_counts.items()):
            action, meaning = catalogue[reason]
            rows = self.bad_rows.loc[self.bad_rows["reason"] == reason, "row"].head(EXAMPLE_ROWS_PER_REASON)
            reasons[reason] = {"count": count, "action": action, "meaning": meaning, "example_rows": rows.tolist()}
        return {
            "table": self.table,
            "source": self.source,
            "rows_total": self.rows_total,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.rows_dropped,
            "reasons": reasons,
            "derived": dict(self.derived),
        }

    def summary(self) -> str:
        """One console line: ``items: 2,000 rows, 2 dropped (duplicate_item_id: 2), 1 repaired (missing_title: 1)``."""
        actions = ITEM_REASONS if self.table == "items" else INTERACTION_REASONS
        parts = [f"{self.table}: {self.rows_total:,} rows"]
        for action in (DROPPED, REPAIRED):
            counts = {reason: n for reason, n in sorted(self.reason_counts.items()) if actions[reason][0] == action}
            rows = self.rows_dropped if action == DROPPED else self._rows_with(counts)
            reasons = ", ".join(f"{reason}: {n:,}" for reason, n in counts.items())
            parts.append(f"{rows:,} {action}" + (f" ({reasons})" if reasons else ""))
        derived = [f"{column} {how}" for column, how in sorted(self.derived.items())]
        return ", ".join(parts) + "".join(f"; {text}" for text in derived)

    def _rows_with(self, reasons: dict[str, int]) -> int:
        return int(self.bad_rows.loc[self.bad_rows["reason"].isin(list(reasons)), "row"].nunique())


class _Flagger:
    """Collects (row, reason, column, value) records while a table is validated."""

    def __init__(self, row_numbers: np.ndarray) -> None:
        self.row_numbers = row_numbers
        self.records: list[pd.DataFrame] = []
        self.counts: dict[str, int] = {}

    def flag(self, mask: np.ndarray, reason: str, column: str, values: pd.Series) -> None:
        if not mask.any():
            return
        self.counts[reason] = self.counts.get(reason, 0) + int(mask.sum())
        self.records.append(
            pd.DataFrame(
                {
                    "row": self.row_numbers[mask],
                    "reason": reason,
                    "column": column,
                    "value": values[mask].astype(str).to_numpy(),
                }
            )
        )

    def report(
        self, table: str, source: str, rows_total: int, rows_kept: int, derived: dict[str, str] | None = None
    ) -> BadRowReport:
        bad_rows = (
            pd.concat(self.records, ignore_index=True).sort_values(["row", "reason"], ignore_index=True)
            if self.records
            else pd.DataFrame(columns=["row", "reason", "column", "value"])
        )
        return BadRowReport(table, source, rows_total, rows_kept, dict(self.counts), bad_rows, derived or {})


def _require_columns(frame: pd.DataFrame, columns: dict[str, bool], table: str, source: str) -> pd.DataFrame:
    missing = [name for name, required in columns.items() if required and name not in frame.columns]
    if missing:
        raise SchemaError(f"{source}: {table} table lacks required column(s) {missing}; has {sorted(frame.columns)}")
    frame = frame.copy()
    for name in columns:
        if name not in frame.columns:
            frame[name] = None
    return frame


def _blank(values: pd.Series) -> np.ndarray:
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def _valid_taxonomy(value: Any) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    labels = list(value) if isinstance(value, list | tuple | np.ndarray) else None
    return (
        labels is not None
        and len(labels) == TAXONOMY_DEPTH
        and all(isinstance(label, str) and label.strip() for label in labels)
    )


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _clean_tags(value: Any) -> list[str] | None:
    """A tags cell as a list of stripped non-empty strings (null: ``[]``), or None when it is not a list of strings."""
    if _is_null(value):
        return []
    if not isinstance(value, list | tuple | np.ndarray) or not all(isinstance(tag, str) for tag in value):
        return None
    return [tag.strip() for tag in value if tag.strip()]


def _resolve(path_value: Any, media_root: Path | None) -> str | None:
    if path_value is None or (isinstance(path_value, float) and np.isnan(path_value)) or str(path_value) == "":
        return None
    path = Path(str(path_value))
    return str(path if path.is_absolute() or media_root is None else media_root / path)


def validate_items(
    frame: pd.DataFrame, media_root: str | os.PathLike[str] | None = None, source: str = "<memory>"
) -> tuple[pd.DataFrame, BadRowReport]:
    """Validate an items table; relative media paths are resolved against ``media_root``.

    Returns the cleaned table (schema columns only, ``item_id`` as str, ``impressions`` as int64,
    ``created_at`` as UTC timestamps, media paths resolved, ``tags`` a list of strings, empty when absent)
    and its bad-row report. Without an ``impressions`` column every item gets 1 (see :func:`load_dataset`).
    """
    derived = {} if "impressions" in frame.columns else {"impressions": IMPRESSIONS_UNIFORM}
    frame = _require_columns(frame, ITEM_COLUMNS, "items", source)[list(ITEM_COLUMNS)].reset_index(drop=True)
    root = Path(media_root) if media_root is not None else None
    flagger = _Flagger(np.arange(len(frame)))
    keep = np.ones(len(frame), dtype=bool)

    missing_id = _blank(frame["item_id"])
    flagger.flag(missing_id, "missing_item_id", "item_id", frame["item_id"])
    frame["item_id"] = frame["item_id"].astype(str).str.strip()
    duplicate = frame["item_id"].duplicated().to_numpy() & ~missing_id
    flagger.flag(duplicate, "duplicate_item_id", "item_id", frame["item_id"])
    impressions = pd.to_numeric(frame["impressions"], errors="coerce")
    if derived:
        impressions = impressions.fillna(1)
    bad_impressions = (impressions.isna() | (impressions < 0)).to_numpy()
    flagger.flag(bad_impressions, "invalid_impressions", "impressions", frame["impressions"])
    keep &= ~missing_id & ~duplicate & ~bad_impressions

    missing_title = frame["title"].isna().to_numpy() & keep
    flagger.flag(missing_title, "missing_title", "title", frame["title"])
    frame["title"] = frame["title"].fillna("").astype(str)

    for column, reason in (("video_path", "missing_video_file"), ("thumbnail_path", "missing_thumbnail_file")):
        resolved = [_resolve(value, root) for value in frame[column]]
        absent = np.array([path is not None and not os.path.isfile(path) for path in resolved]) & keep
        flagger.flag(absent, reason, column, frame[column])
        frame[column] = [None if gone else path for path, gone in zip(resolved, absent, strict=True)]

    created_at = pd.to_datetime(frame["created_at"], errors="coerce", utc=True)
    bad_created = (created_at.isna() & frame["created_at"].notna()).to_numpy() & keep
    flagger.flag(bad_created, "invalid_created_at", "created_at", frame["created_at"])
    frame["created_at"] = created_at

    bad_taxonomy = np.array([not _valid_taxonomy(value) for value in frame["taxonomy"]]) & keep
    flagger.flag(bad_taxonomy, "invalid_taxonomy", "taxonomy", frame["taxonomy"])
    frame["taxonomy"] = [
        None if bad or value is None or (isinstance(value, float) and np.isnan(value)) else [str(x) for x in value]
        for value, bad in zip(frame["taxonomy"], bad_taxonomy, strict=True)
    ]

    tags = [_clean_tags(value) for value in frame["tags"]]
    bad_tags = np.array([value is None for value in tags], dtype=bool) & keep
    flagger.flag(bad_tags, "invalid_tags", "tags", frame["tags"])
    frame["tags"] = [value or [] for value in tags]

    frame["impressions"] = impressions.fillna(0).astype("int64")
    cleaned = frame[keep].reset_index(drop=True)
    return cleaned, flagger.report("items", source, len(frame), len(cleaned), derived)


def validate_interactions(
    frame: pd.DataFrame, known_item_ids: Iterable[str], source: str = "<memory>"
) -> tuple[pd.DataFrame, BadRowReport]:
    """Validate an interactions table against the valid items; returns (cleaned table, bad-row report)."""
    frame = _require_columns(frame, INTERACTION_COLUMNS, "interactions", source)[list(INTERACTION_COLUMNS)]
    frame = frame.reset_index(drop=True)
    known = set(known_item_ids)
    flagger = _Flagger(np.arange(len(frame)))

    missing_user = _blank(frame["user_id"])
    flagger.flag(missing_user, "missing_user_id", "user_id", frame["user_id"])
    item_ids = frame["item_id"].astype(str).str.strip()
    unknown_item = ~item_ids.isin(known).to_numpy() | frame["item_id"].isna().to_numpy()
    flagger.flag(unknown_item, "unknown_item", "item_id", frame["item_id"])
    timestamps = pd.to_datetime(frame["ts"], errors="coerce", utc=True)
    bad_ts = timestamps.isna().to_numpy()
    flagger.flag(bad_ts, "invalid_ts", "ts", frame["ts"])
    satisfaction = pd.to_numeric(frame["satisfaction"], errors="coerce")
    missing_satisfaction = satisfaction.isna().to_numpy()
    flagger.flag(missing_satisfaction, "missing_satisfaction", "satisfaction", frame["satisfaction"])
    out_of_range = (~missing_satisfaction) & ((satisfaction < 0) | (satisfaction > 1)).to_numpy()
    flagger.flag(out_of_range, "satisfaction_out_of_range", "satisfaction", frame["satisfaction"])
    has_context = ~_blank(frame["context_item_id"])
    context_ids = frame["context_item_id"].astype(str).str.strip()
    unknown_context = has_context & ~context_ids.isin(known).to_numpy()
    flagger.flag(unknown_context, "unknown_context_item", "context_item_id", frame["context_item_id"])

    keep = ~(missing_user | unknown_item | bad_ts | missing_satisfaction | out_of_range | unknown_context)
    frame["user_id"] = frame["user_id"].astype(str).str.strip()
    frame["item_id"] = item_ids
    frame["ts"] = timestamps
    frame["satisfaction"] = satisfaction.astype("float64")
    frame["context_item_id"] = context_ids.where(has_context, None)
    frame["session_id"] = frame["session_id"].where(~_blank(frame["session_id"]), None)
    cleaned = frame[keep].reset_index(drop=True)
    return cleaned, flagger.report("interactions", source, len(frame), len(cleaned))


def _read_parquet(path: str | os.PathLike[str], table: str) -> pd.DataFrame:
    try:
        # One thread: pyarrow 23's reader threads can still be running when a job exits right after a read
        # (a bad table), and the interpreter then aborts (SIGABRT, 'terminate called') about half the time.
        return pd.read_parquet(path, use_threads=False)
    except FileNotFoundError as error:
        raise SchemaError(f"{table} file {path} does not exist") from error
    except (OSError, ValueError) as error:
        raise SchemaError(f"{table} file {path} is not a readable parquet file ({error})") from error


def load_items(
    path: str | os.PathLike[str], media_root: str | os.PathLike[str] | None = None
) -> tuple[pd.DataFrame, BadRowReport]:
    """Read and validate ``items.parquet``; media paths resolve against ``media_root`` (default: its dir)."""
    root = Path(media_root) if media_root is not None else Path(path).parent
    return validate_items(_read_parquet(path, "items"), root, str(path))


def load_interactions(path: str | os.PathLike[str], known_item_ids: Iterable[str]) -> tuple[pd.DataFrame, BadRowReport]:
    """Read and validate ``interactions.parquet`` against the valid item ids."""
    return validate_interactions(_read_parquet(path, "interactions"), known_item_ids, str(path))


def impressions_from_interactions(items: pd.DataFrame, interactions: pd.DataFrame) -> pd.Series:
    """Impressions of items that have none: each item's rows in the validated interactions (0 for an unseen item)."""
    counts = interactions["item_id"].value_counts()
    return items["item_id"].map(counts).fillna(0).astype("int64")


@dataclass
class Dataset:
    """Validated items and interactions with their bad-row reports."""

    items: pd.DataFrame
    interactions: pd.DataFrame
    items_report: BadRowReport
    interactions_report: BadRowReport

    def reports(self) -> dict[str, Any]:
        """Both reports as JSON-ready dicts."""
        return {"items": self.items_report.to_dict(), "interactions": self.interactions_report.to_dict()}


def load_dataset(
    items_path: str | os.PathLike[str],
    interactions_path: str | os.PathLike[str] | None = None,
    media_root: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load items (and interactions, when given) with validation; see the module docstring."""
    items, items_report = load_items(items_path, media_root)
    if interactions_path is None:
        empty = pd.DataFrame({name: pd.Series(dtype=object) for name in INTERACTION_COLUMNS})
        interactions, interactions_report = validate_interactions(empty, items["item_id"], "<none>")
    else:
        interactions, interactions_report = load_interactions(interactions_path, items["item_id"])
        if "impressions" in items_report.derived:
            items["impressions"] = impressions_from_interactions(items, interactions)
            items_report.derived["impressions"] = IMPRESSIONS_COUNTED
    return Dataset(items, interactions, items_report, interactions_report)
