"""The served Triton models' tensors, written once: the config generators, the python-backend models and the
service clients all read their names, data types and dims from here, so a client cannot disagree with a config.

Light on purpose (dataclasses and numpy only): the Planner and Retriever services import it, and so does the
model code tritonserver's python stub runs. Dims exclude the batch dimension; ``-1`` is a dim the artifact or
the request decides (a config fills the artifact's with :meth:`TensorSpec.with_dims`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from serendip.artifacts.model_repository import MLLM_MODEL, SEQREC_MODEL

NUMPY_TYPES: dict[str, type[np.generic]] = {
    "TYPE_STRING": np.object_,
    "TYPE_UINT8": np.uint8,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP32": np.float32,
}
"""Numpy dtype of each Triton config data type used here (strings travel as ``bytes`` objects)."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, Triton data type (e.g. ``TYPE_FP32``) and dims without batch."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool = False
    ragged: bool = False
    """Let the dynamic batcher group requests whose shapes differ (the model handles each request)."""

    @property
    def wire_type(self) -> str:
        """The inference protocol's name of the data type (``TYPE_STRING`` travels as ``BYTES``)."""
        return "BYTES" if self.data_type == "TYPE_STRING" else self.data_type.removeprefix("TYPE_")

    @property
    def numpy_dtype(self) -> type[np.generic]:
        """The numpy dtype of the tensor's values."""
        return NUMPY_TYPES[self.data_type]

    def with_dims(self, dims: tuple[int, ...]) -> TensorSpec:
        """The same tensor with concrete ``dims`` (an artifact's sizes, a warm-up request's shape)."""
        return dataclasses.replace(self, dims=dims)


@dataclass(frozen=True)
class ModelSpec:
    """A served model: its Triton name and its input and output tensors."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        """The input tensor called ``name`` (KeyError when the model has none)."""
        return _named(self.inputs, name, self.name)

    def output(self, name: str) -> TensorSpec:
        """The output tensor called ``name`` (KeyError when the model has none)."""
        return _named(self.outputs, name, self.name)


def _named(specs: tuple[TensorSpec, ...], name: str, model: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"model {model!r} has no tensor {name!r}")


# mllm: one context video per request in, its ranked serendipitous clusters out.
ITEM_ID = TensorSpec("ITEM_ID", "TYPE_STRING", (1,))
TITLE = TensorSpec("TITLE", "TYPE_STRING", (1,), optional=True)
FRAMES = TensorSpec("FRAMES", "TYPE_UINT8", (-1, -1, -1, 3), optional=True, ragged=True)
"""[n, H, W, 3] sampled frames."""
THUMBNAIL = TensorSpec("THUMBNAIL", "TYPE_UINT8", (-1, -1, 3), optional=True, ragged=True)
CANDIDATES = TensorSpec("CANDIDATES", "TYPE_STRING", (-1,), optional=True, ragged=True)
"""Cluster ids the plan may use (absent: every cluster)."""
NUM_CLUSTERS = TensorSpec("NUM_CLUSTERS", "TYPE_INT32", (1,))
CLUSTER_IDS = TensorSpec("CLUSTER_IDS", "TYPE_STRING", (-1,))
"""Best first."""
SCORES = TensorSpec("SCORES", "TYPE_FP32", (-1,))
REASONING = TensorSpec("REASONING", "TYPE_STRING", (1,))
MLLM = ModelSpec(
    MLLM_MODEL,
    inputs=(ITEM_ID, TITLE, FRAMES, THUMBNAIL, CANDIDATES, NUM_CLUSTERS),
    outputs=(CLUSTER_IDS, SCORES, REASONING),
)

# seqrec: left-padded item-index histories in, user embeddings out.
HISTORY = TensorSpec("HISTORY", "TYPE_INT64", (-1,))
"""[max_len] left-padded item indices; the config fixes the artifact's max_len."""
USER_EMBEDDING = TensorSpec("USER_EMBEDDING", "TYPE_FP32", (-1,))
"""[hidden]; the config fixes the artifact's hidden size."""
SEQREC = ModelSpec(SEQREC_MODEL, inputs=(HISTORY,), outputs=(USER_EMBEDDING,))
