"""The ``model_repository`` artifact: a Triton model repository (``make build-engines``).

A version directory is what ``tritonserver --model-repository`` reads: ``mllm/`` and ``seqrec/`` (each a
``config.pbtxt`` and version ``1/``), plus ``seqrec.libtorch.pbtxt`` for GPU deployments. Its manifest's
``inputs`` name the ``mllm`` and ``sasrec`` versions it was built from: the lineage serving starts from.
"""

from __future__ import annotations

REPOSITORY_KIND = "model_repository"
SCHEMA_VERSION = 1
MLLM_MODEL = "mllm"
SEQREC_MODEL = "seqrec"
LIBTORCH_CONFIG_FILE = "seqrec.libtorch.pbtxt"
