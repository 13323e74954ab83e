"""The plan table's serving layout: one Arrow row per item, found by a stable 64-bit key, read zero-copy.

``plans.arrow`` (uncompressed Arrow IPC, one record batch) holds ``item_key`` (int64, BLAKE2b-64 of the UTF-8
item id), ``item_id`` and ``clusters`` (the item's clusters best first: cluster id, score, reasoning), sorted by
(item_key, item_id). Opened through a memory map, it costs no parse and no Python object per item: the key column
is the sorted lookup array, and a lookup decodes only the one item's clusters. Items whose keys collide sit next to
each other and are told apart by their stored ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_SCHEME = b"blake2b-64-le-signed"
"""How ``item_key`` is computed; a file written with another scheme is not used as an index."""
_KEY_SCHEME_FIELD = b"serendip.item_key"


@dataclass(frozen=True)
class CachedCluster:
    """One planned cluster of an item."""

    cluster_id: str
    score: float
    reasoning: str


def item_key(encoded_item_id: bytes) -> int:
    """The stable 64-bit key (signed) of a UTF-8 item id: the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(encoded_item_id, digest_size=8).digest(), "little", signed=True)


def build_serving_batch(rows: pa.Table) -> pa.RecordBatch:
    """The serving layout of plan rows (``item_id``, ``rank``, ``cluster_id``, ``score``, ``reasoning``, any order)."""
    row_items = rows.column("item_id").combine_chunks()
    items = pc.unique(row_items)
    keys = np.fromiter((item_key(item.encode()) for item in items.to_pylist()), dtype=np.int64, count=len(items))
    item_order = pc.sort_indices(
        pa.table({"key": keys, "item_id": items}), sort_keys=[("key", "ascending"), ("item_id", "ascending")]
    ).to_numpy()
    position_of_item = np.empty(len(items), dtype=np.int64)
    position_of_item[item_order] = np.arange(len(items))
    row_positions = position_of_item[pc.index_in(row_items, value_set=items).to_numpy()]
    row_order = np.lexsort((rows.column("rank").to_numpy(), row_positions))
    bounds = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_positions, minlength=len(items)), out=bounds[1:])
    entries = pa.StructArray.from_arrays(
        [
            pc.dictionary_encode(rows.column("cluster_id").take(row_order).combine_chunks()),
            pc.fill_null(rows.column("score").cast(pa.float64()), float("nan")).take(row_order).combine_chunks(),
            pc.fill_null(rows.column("reasoning").cast(pa.large_string()), "").take(row_order).combine_chunks(),
        ],
        names=["cluster_id", "score", "reasoning"],
    )
    return pa.RecordBatch.from_arrays(
        [
            pa.array(keys[item_order]),
            items.take(item_order).cast(pa.large_string()),
            pa.LargeListArray.from_arrays(pa.array(bounds), entries),
        ],
        names=["item_key", "item_id", "clusters"],
        metadata={_KEY_SCHEME_FIELD: KEY_SCHEME},
    )


def write_serving_file(batch: pa.RecordBatch, path: Path) -> None:
    """Write ``batch`` as an uncompressed Arrow IPC file of exactly one record batch."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


def open_serving_file(path: Path) -> pa.RecordBatch | None:
    """The file's record batch, memory-mapped (zero copy); None when it was keyed with another scheme."""
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    if (reader.schema.metadata or {}).get(_KEY_SCHEME_FIELD) != KEY_SCHEME or reader.num_record_batches != 1:
        return None
    return reader.get_batch(0)


def _fixed_width(array: pa.Array, value_format: str, extra: int = 0) -> memoryview:
    """The values of a fixed-width array without nulls (plus ``extra`` past its end), zero copy.

    Indexing a memoryview yields Python numbers directly: cheaper per lookup than numpy scalars.
    """
    buffer = array.buffers()[1]
    values = memoryview(buffer if buffer is not None else b"").cast(value_format)
    return values[array.offset : array.offset + len(array) + extra]


class _Utf8Values:
    """Zero-copy access to the values of a ``large_string`` array without nulls."""

    def __init__(self, array: pa.LargeStringArray) -> None:
        data = array.buffers()[2]
        self.offsets = _fixed_width(array, "q", extra=1)
        self.data = memoryview(data if data is not None else b"").cast("B")

    def values(self, start: int, end: int) -> list[str]:
        """Values ``start`` to ``end`` (exclusive), decoded."""
        bounds = self.offsets[start : end + 1].tolist()
        data = self.data
        return [str(data[low:high], "utf-8") for low, high in zip(bounds, bounds[1:], strict=False)]


class PlanIndex:
    """Lookups in a serving batch (memory-mapped or in memory); holds views of its buffers, never copies."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        clusters = batch.column("clusters")
        entries = clusters.values
        cluster_ids = entries.field("cluster_id")
        self._keys = _fixed_width(batch.column("item_key"), "q")
        self._sorted_keys = np.asarray(self._keys)
        self._item_ids = _Utf8Values(batch.column("item_id"))
        self._bounds = _fixed_width(clusters, "q", extra=1)
        self._cluster_codes = _fixed_width(cluster_ids.indices, "i")
        self._cluster_names: list[str] = cluster_ids.dictionary.to_pylist()
        self._scores = _fixed_width(entries.field("score"), "d")
        self._reasonings = _Utf8Values(entries.field("reasoning"))

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        """Item ids, in key order."""
        return iter(self._item_ids.values(0, len(self._keys)))

    def lookup(self, item_id: str) -> list[CachedCluster]:
        """The item's clusters best first (empty when the table has no plan for it).

        Runs on the Planner's event loop once per request: plain memoryview reads, one numpy search, no copies
        beyond the one item's strings.
        """
        encoded = item_id.encode()
        key = item_key(encoded)
        keys, id_offsets, id_data = self._keys, self._item_ids.offsets, self._item_ids.data
        position = self._sorted_keys.searchsorted(key)
        while position < len(keys) and keys[position] == key:
            start, end = id_offsets[position : position + 2].tolist()
            if id_data[start:end] == encoded:
                return self._clusters(position)
            position += 1
        return []

    def _clusters(self, position: int) -> list[CachedCluster]:
        start, end = self._bounds[position : position + 2].tolist()
        names, text = self._cluster_names, self._reasonings.data
        text_bounds = self._reasonings.offsets[start : end + 1].tolist()
        return [
            CachedCluster(names[code], score, str(text[low:high], "utf-8"))
            for code, score, low, high in zip(
                self._cluster_codes[start:end].tolist(),
                self._scores[start:end].tolist(),
                text_bounds,
                text_bounds[1:],
                strict=False,
            )
        ]
