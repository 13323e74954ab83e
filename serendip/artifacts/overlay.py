"""The ``overlay`` plan table: plans the Planner made itself since the batch table (nearline batches, LIVE runs).

Layout, one directory per MLLM (named by the first 16 hex digits of the ``mllm`` artifact's content hash)::

    <root>/overlay/<mllm sha256[:16]>/
        lineage.json                          the mllm version and content hash, the curation version
        segment-<time ns>-<pid>.parquet       one written batch: PLAN_COLUMNS + planned_at; immutable

A segment is written to a temporary file, flushed to disk and renamed into place (then the directory is
flushed), so a reader never sees half a segment and a ``kill -9`` loses at most the batch being written.
Later segments override earlier ones item by item; past ``MAX_SEGMENTS`` they are merged into one. Plans of
another MLLM live in another directory and are never read. ``make batch-plans`` reads the overlay of the MLLM
it plans with and does not plan those items again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.plans import PLAN_COLUMNS
from serendip.core.errors import ArtifactError

OVERLAY_KIND = "overlay"
SCHEMA_VERSION = 1
LINEAGE_FILE = "lineage.json"
SEGMENT_GLOB = "segment-*.parquet"
OVERLAY_COLUMNS = [*PLAN_COLUMNS, "planned_at"]
MAX_SEGMENTS = 64
"""More segments than this are merged into one (each LIVE write-back adds a small one)."""


def overlay_dir(root: str | os.PathLike[str], mllm_sha256: str) -> Path:
    """The overlay directory of one MLLM under an artifacts root."""
    return Path(root) / OVERLAY_KIND / mllm_sha256[:16]


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_durably(path: Path, write: Any) -> None:
    """``write(temporary_path)``, fsync it, rename it to ``path`` and fsync the directory."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


class OverlayStore:
    """The overlay of one MLLM: append batches of plans, read them back merged."""

    def __init__(self, root: str | os.PathLike[str], mllm_sha256: str, lineage: dict[str, Any] | None = None) -> None:
        self.directory = overlay_dir(root, mllm_sha256)
        self.mllm_sha256 = mllm_sha256
        self.directory.mkdir(parents=True, exist_ok=True)
        lineage_path = self.directory / LINEAGE_FILE
        if lineage_path.is_file():
            recorded = json.loads(lineage_path.read_text())
            if recorded.get("mllm_sha256") != mllm_sha256:
                raise ArtifactError(f"{lineage_path} belongs to mllm {recorded.get('mllm_version')}, not this one")
        else:
            document = {"format": f"serendip.overlay/v{SCHEMA_VERSION}", "mllm_sha256": mllm_sha256, **(lineage or {})}
            _write_durably(lineage_path, lambda path: path.write_text(json.dumps(document, indent=1) + "\n"))

    def segments(self) -> list[Path]:
        """Finished segments, oldest first (temporary files of an interrupted write are ignored)."""
        return sorted(self.directory.glob(SEGMENT_GLOB))

    def append(self, rows: Sequence[dict[str, Any]]) -> Path | None:
        """Write ``rows`` (PLAN_COLUMNS) as one new segment, durably; None when there are none."""
        if not rows:
            return None
        frame = pd.DataFrame(list(rows), columns=PLAN_COLUMNS).assign(planned_at=time.time())
        path = self.directory / f"segment-{time.time_ns():020d}-{os.getpid()}.parquet"
        _write_durably(path, lambda target: frame.to_parquet(target, index=False))
        return path

    def read(self) -> pd.DataFrame:
        """Every item's newest plan (OVERLAY_COLUMNS), from all segments."""
        return read_segments(self.segments())

    def compact(self, max_segments: int = MAX_SEGMENTS) -> bool:
        """Merge every segment into one when there are more than ``max_segments``; True when it did.

        The merged segment is written durably under a name that sorts right after the newest segment it merges
        (and before any written meanwhile), then the merged ones are removed: a crash in between leaves
        duplicates with the same content, never a loss.
        """
        segments = self.segments()
        if len(segments) <= max_segments:
            return False
        merged = read_segments(segments)
        target = segments[-1].with_name(segments[-1].name.removesuffix(".parquet") + ".z.parquet")
        _write_durably(target, lambda path: merged.to_parquet(path, index=False))
        for segment in segments:
            if segment != target:
                segment.unlink(missing_ok=True)
        _fsync_directory(self.directory)
        return True


def read_segments(segments: Iterable[Path]) -> pd.DataFrame:
    """The newest plan of each item over ``segments`` (oldest first): later segments win."""
    frames = [pd.read_parquet(path).assign(_segment=order) for order, path in enumerate(segments)]
    if not frames:
        return pd.DataFrame(columns=OVERLAY_COLUMNS)
    rows = pd.concat(frames, ignore_index=True)
    newest = rows.groupby("item_id")["_segment"].transform("max")
    return rows[rows["_segment"] == newest].drop(columns="_segment").reset_index(drop=True)


def read_overlay(root: str | os.PathLike[str], mllm_sha256: str) -> pd.DataFrame:
    """The overlay of one MLLM under ``root`` (empty when it has none)."""
    directory = overlay_dir(root, mllm_sha256)
    return read_segments(sorted(directory.glob(SEGMENT_GLOB))) if directory.is_dir() else read_segments([])
