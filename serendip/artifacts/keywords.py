"""The item keywords artifact: per-item keyword summaries by a chain-of-thought MLLM, and related keywords.

Published as a versioned ``keywords`` artifact (``artifacts/keywords/<version>/`` + manifest, ``LATEST`` switched
atomically) by ``python -m ray_jobs.item_keywords``:

* ``keywords.parquet`` -- item_id, content_sha256, model_version, keywords (space-joined, in the order the model
  said them): one row per summarised item, and the incremental manifest of the next run;
* ``related.parquet`` -- item_id, related_keywords (space-joined), neighbours: the keywords of each item's most
  co-engaged items (:func:`serendip.offline.item_keywords.related_keywords`);
* ``errors.parquet`` -- item_id, content_sha256, error: items the model could not summarise (retried next run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serendip.artifacts.store import ArtifactWriter, resolve_artifact
from serendip.core.errors import ArtifactError

KEYWORDS_KIND = "keywords"
KEYWORDS_FILE = "keywords.parquet"
RELATED_FILE = "related.parquet"
KEYWORD_ERRORS_FILE = "errors.parquet"
KEYWORDS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("content_sha256", pa.string()),
        ("model_version", pa.string()),
        ("keywords", pa.string()),
    ]
)
RELATED_SCHEMA = pa.schema([("item_id", pa.string()), ("related_keywords", pa.string()), ("neighbours", pa.int64())])
KEYWORD_ERRORS_SCHEMA = pa.schema([("item_id", pa.string()), ("content_sha256", pa.string()), ("error", pa.string())])
KEYWORD_COLUMNS = KEYWORDS_SCHEMA.names
RELATED_COLUMNS = RELATED_SCHEMA.names
KEYWORD_ERROR_COLUMNS = KEYWORD_ERRORS_SCHEMA.names


def _write(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    """``frame``'s schema columns as parquet, typed by ``schema`` (an empty frame too)."""
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    pq.write_table(table, path)


def publish_keywords(
    root: Path,
    keywords: pd.DataFrame,
    related: pd.DataFrame,
    errors: pd.DataFrame,
    parameters: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> Path:
    """Write the three tables as a new keywords version under ``root`` and switch LATEST to it; returns its dir.

    ``counts`` are added to the manifest counts (``items``: keyword rows, ``related_items``: related rows).
    """
    with ArtifactWriter(root, KEYWORDS_KIND, parameters, inputs=inputs or {}) as writer:
        _write(keywords, KEYWORDS_SCHEMA, writer.dir / KEYWORDS_FILE)
        _write(related, RELATED_SCHEMA, writer.dir / RELATED_FILE)
        _write(errors, KEYWORD_ERRORS_SCHEMA, writer.dir / KEYWORD_ERRORS_FILE)
        writer.counts.update(counts or {})
        writer.counts.update({"items": len(keywords), "related_items": len(related), "errors": len(errors)})
    return writer.final_dir


def _table(directory: str | os.PathLike[str], file_name: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of one table of a keywords version (version dir, kind dir following LATEST, or artifacts root)."""
    path = resolve_artifact(directory, KEYWORDS_KIND) / file_name
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist: not a keywords artifact written by ray_jobs.item_keywords")
    return pd.read_parquet(path, columns=columns)


def load_item_keywords(directory: str | os.PathLike[str]) -> dict[str, list[str]]:
    """item id -> its keywords, in the order the model said them."""
    frame = _table(directory, KEYWORDS_FILE, ["item_id", "keywords"])
    return {item_id: words.split() for item_id, words in zip(frame["item_id"], frame["keywords"], strict=True)}


def load_related_keywords(directory: str | os.PathLike[str]) -> dict[str, str]:
    """item id -> its related keywords (space-joined); items without any are absent."""
    frame = _table(directory, RELATED_FILE, ["item_id", "related_keywords"])
    return dict(zip(frame["item_id"], frame["related_keywords"], strict=True))
