"""The ``sasrec`` artifact: a trained SASRec for serving (written by ``serendip.jobs.train_sasrec``).

Layout of a version directory (schema ``SCHEMA_VERSION``):

- ``user_encoder.pt``  TorchScript (scripted, frozen): history [B, max_len] int64 -> user embedding [B, D]
- ``user_encoder.pt2``  the same encoder as a ``torch.export`` ExportedProgram (``torch.export.save``; batch
  dimension dynamic, length fixed at max_len), the source ``build-engines --seqrec-format export`` compiles
  into an AOTInductor package for its device
- ``item_embeddings.npy``  float32 [N + 1, D]; row 0 is padding
- ``item_ids.json``  catalogue id of model index i at position i - 1
- ``popularity.npy``  float64 [N + 1] training counts (cold-start ranking)
- ``model_config.json``  SASRecConfig fields
- ``metrics.json``, ``training_log.jsonl``, ``manifest.json``
- ``report.json``  the input tables' bad-row reports (``inputs.items``, ``inputs.interactions``: rows total, kept,
  dropped, per reason its count and example rows), and ``bad_rows_items.parquet``, ``bad_rows_interactions.parquet``
  listing every bad row (row, reason, column, value)

Nothing here needs torch: the Retriever reads the tables, Triton loads the TorchScript file (or the package
compiled from the ExportedProgram).

The ``sasrec_ann`` artifact (written by ``python -m serendip.models.sasrec.ann``) holds per-cluster ANN indexes
over one sasrec version's item embeddings, the clusters being one level of one tree (both recorded as its inputs):

- ``clusters.json``  planning level and, per indexed cluster, its id, index file, FAISS index type and item count
- ``indexes/cluster_<n>.faiss``  a FAISS index (``faiss.write_index``) whose id ``i`` is the cluster's ``i``-th
  item in :func:`cluster_members` order; clusters without a file are ranked exactly
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import ArtifactError
from serendip.core.schema import Dataset

if TYPE_CHECKING:
    import faiss

SASREC_KIND = "sasrec"
SCHEMA_VERSION = 1
USER_ENCODER = "user_encoder.pt"
EXPORTED_USER_ENCODER = "user_encoder.pt2"
ITEM_EMBEDDINGS = "item_embeddings.npy"
ITEM_IDS = "item_ids.json"
POPULARITY = "popularity.npy"
MODEL_CONFIG = "model_config.json"
REPORT = "report.json"
SASREC_ANN_KIND = "sasrec_ann"
ANN_CLUSTERS = "clusters.json"
ANN_INDEX_DIR = "indexes"


@dataclass(frozen=True)
class SASRecConfig:
    """Model size; defaults follow RecBole's SASRec (2 layers, 2 heads, hidden 64, max length 50)."""

    num_items: int
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    inner: int = 256
    max_len: int = 50
    dropout: float = 0.2
    trimmed_histories: bool = False
    """The exported encoder accepts a batch cut to its longest history (leading all-padding columns dropped) and
    encodes it exactly as at ``max_len``; False in versions written before encoders did (the serving model then
    sends full-length histories)."""

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready fields."""
        return asdict(self)


class ItemVocabulary:
    """Bijection catalogue item id <-> model index; index 0 is padding, items are 1..N."""

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids = [str(item_id) for item_id in item_ids]
        self._index = {item_id: position + 1 for position, item_id in enumerate(self.item_ids)}
        if len(self._index) != len(self.item_ids):
            raise ValueError("item ids must be unique")

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self, item_id: str) -> int | None:
        """Model index of ``item_id``, None when unknown."""
        return self._index.get(item_id)

    def item_id(self, index: int) -> str:
        """Catalogue id of model index ``index`` (1..N)."""
        return self.item_ids[index - 1]

    def save(self, path: Path) -> None:
        """Write as a JSON list (position i holds the id of index i + 1)."""
        path.write_text(json.dumps(self.item_ids))

    @classmethod
    def load(cls, path: Path) -> ItemVocabulary:
        """Read a vocabulary written by :meth:`save`."""
        return cls(json.loads(Path(path).read_text()))


def left_pad(history: list[int], max_len: int) -> list[int]:
    """The last ``max_len`` indices of ``history``, left-padded with 0."""
    recent = history[-max_len:]
    return [0] * (max_len - len(recent)) + recent


def write_sasrec_tables(
    directory: Path,
    config: SASRecConfig,
    vocabulary: ItemVocabulary,
    item_embeddings: np.ndarray,
    popularity: np.ndarray,
) -> None:
    """Write everything but the user encoder files into ``directory`` (a version being written)."""
    np.save(directory / ITEM_EMBEDDINGS, item_embeddings.astype(np.float32, copy=False), allow_pickle=False)
    np.save(directory / POPULARITY, popularity, allow_pickle=False)
    vocabulary.save(directory / ITEM_IDS)
    (directory / MODEL_CONFIG).write_text(json.dumps(config.to_dict(), indent=2))


def write_input_report(directory: Path, dataset: Dataset) -> None:
    """Write the bad-row reports of the training data into ``directory`` (a version being written)."""
    (directory / REPORT).write_text(json.dumps({"inputs": dataset.reports()}, indent=2, default=str) + "\n")
    for report in (dataset.items_report, dataset.interactions_report):
        report.bad_rows.to_parquet(directory / f"bad_rows_{report.table}.parquet", index=False)


@dataclass
class SASRecArtifact:
    """The serving files of one ``sasrec`` artifact version, loaded."""

    directory: Path
    config: SASRecConfig
    vocabulary: ItemVocabulary
    item_embeddings: np.ndarray
    popularity: np.ndarray

    @classmethod
    def load(cls, path: Path) -> SASRecArtifact:
        """Read everything except the user encoder files (Triton loads those).

        ``path`` is a version directory, the kind directory (its LATEST) or the artifacts root.
        """
        directory = resolve_artifact(path, SASREC_KIND)
        return cls(
            directory=directory,
            config=SASRecConfig(**json.loads((directory / MODEL_CONFIG).read_text())),
            vocabulary=ItemVocabulary.load(directory / ITEM_IDS),
            item_embeddings=np.load(directory / ITEM_EMBEDDINGS, allow_pickle=False),
            popularity=np.load(directory / POPULARITY, allow_pickle=False),
        )

    @property
    def user_encoder_path(self) -> Path:
        """The TorchScript file."""
        return self.directory / USER_ENCODER

    @property
    def exported_user_encoder_path(self) -> Path:
        """The ``torch.export`` ExportedProgram (absent from versions written before it existed)."""
        return self.directory / EXPORTED_USER_ENCODER

    @property
    def version(self) -> str:
        """The artifact version (directory name)."""
        return self.directory.name


def cluster_members(vocabulary: ItemVocabulary, tree: ClusterTree, level: int) -> list[tuple[str, list[int]]]:
    """Each level-``level`` node of ``tree`` with the model indices of its items ``vocabulary`` knows, in tree order.

    The Retriever's contiguous rows and the ids of the ``sasrec_ann`` indexes both follow this order.
    """
    members = []
    for cluster_id in tree.nodes_at(level):
        indices = [vocabulary.index(item_id) for item_id in tree.items_in(cluster_id)]
        members.append((cluster_id, [index for index in indices if index is not None]))
    return members


def write_ann_indexes(directory: Path, planning_level: int, indexes: dict[str, faiss.Index]) -> None:
    """Write one FAISS file per cluster of ``indexes`` and ``clusters.json`` into ``directory`` (a version being
    written)."""
    import faiss  # about 0.3 s to import: only the ANN files need it

    (directory / ANN_INDEX_DIR).mkdir()
    clusters = []
    for position, (cluster_id, index) in enumerate(indexes.items()):
        file = f"{ANN_INDEX_DIR}/cluster_{position:05d}.faiss"
        faiss.write_index(index, str(directory / file))
        clusters.append(
            {"cluster_id": cluster_id, "file": file, "index": searched_index_name(index), "items": index.ntotal}
        )
    (directory / ANN_CLUSTERS).write_text(
        json.dumps({"planning_level": planning_level, "clusters": clusters}, indent=2) + "\n"
    )


def searched_index_name(index: faiss.Index) -> str:
    """The FAISS class that does the search, inside the MIPS transform (``IndexPreTransform``) or the exact rescoring
    (``IndexRefine``) around it: ``IndexIVFFlat``, ``IndexHNSWFlat``, ``IndexPQFastScan``."""
    import faiss

    while isinstance(index, faiss.IndexPreTransform | faiss.IndexRefine):
        index = faiss.downcast_index(index.index if isinstance(index, faiss.IndexPreTransform) else index.base_index)
    return type(index).__name__


@dataclass
class SASRecAnnIndexes:
    """The per-cluster ANN indexes of one ``sasrec_ann`` artifact version, loaded."""

    directory: Path
    planning_level: int
    indexes: dict[str, faiss.Index]

    @classmethod
    def load(cls, path: Path) -> SASRecAnnIndexes:
        """Read every index; ``path`` is a version directory, the kind directory (its LATEST) or the artifacts root."""
        import faiss  # about 0.3 s to import: only the ANN files need it

        directory = resolve_artifact(path, SASREC_ANN_KIND)
        listing = json.loads((directory / ANN_CLUSTERS).read_text())
        indexes = {
            entry["cluster_id"]: faiss.read_index(str(directory / entry["file"])) for entry in listing["clusters"]
        }
        return cls(directory=directory, planning_level=listing["planning_level"], indexes=indexes)

    def check_built_from(self, sasrec_dir: Path, tree_dir: Path, planning_level: int) -> None:
        """Raise ArtifactError unless these indexes were built from these sasrec and tree versions at this level."""
        inputs = read_manifest(self.directory)["inputs"]
        for name, used in (("sasrec", sasrec_dir), ("tree", tree_dir)):
            if inputs[name]["content_sha256"] != read_manifest(used)["content_sha256"]:
                raise ArtifactError(
                    f"{self.directory} indexes {name} {inputs[name]['version']}, not {used.name}: "
                    "rebuild it with `python -m serendip.models.sasrec.ann`"
                )
        if self.planning_level != planning_level:
            raise ArtifactError(
                f"{self.directory} indexes the clusters of level {self.planning_level}, not {planning_level}"
            )
