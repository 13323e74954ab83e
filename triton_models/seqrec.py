"""The ``seqrec`` Triton model: the SASRec user encoder.

Two configs are generated from the same artifact: a python-backend model (the embedded default; the
CPU tritonserver here has only the python backend) and a ``pytorch_libtorch`` model for the NGC
tritonserver image on GPU nodes.

The python-backend model runs one of two formats of the same encoder (config parameter ``model_format``):
``torchscript`` (the artifact's ``user_encoder.pt``, the default) or ``export`` (an AOTInductor package compiled
here, at install time, from the artifact's ``torch.export`` ExportedProgram ``user_encoder.pt2`` for the instance
kind's device).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

from tritonclient.grpc import model_config_pb2 as mc

from serendip.artifacts.sasrec import USER_ENCODER, SASRecArtifact
from serendip.core.errors import ArtifactError
from serendip.models.sasrec.export import compile_user_encoder
from triton_models.model_config import add_zero_warmup, install_python_model, python_backend_config
from triton_models.specs import HISTORY, SEQREC, USER_EMBEDDING

SEQREC_SOURCE = Path(__file__).parent / "python_models" / "seqrec.py"
SeqrecFormat = Literal["torchscript", "export"]
"""``torchscript``: the TorchScript file; ``export``: an AOTInductor package of the ``torch.export`` program."""
USER_ENCODER_PACKAGE = "user_encoder_aoti.pt2"
"""File name of the AOTInductor package in the model's version directory."""
MODEL_FILES: dict[str, str] = {"torchscript": USER_ENCODER, "export": USER_ENCODER_PACKAGE}
SEQREC_MAX_BATCH_SIZE = 64
"""Histories in one execution of the python-backend seqrec at most (its ``max_batch_size``)."""
CONCURRENT_CLIENTS_QUEUE_DELAY_US = 2000
CONCURRENT_CLIENTS_PREFERRED_BATCH_SIZES = (8, 16, 32)
"""Dynamic batching for many concurrent clients of one history each (``bench.triton_sweep``, docs/loadtest.md):
a batch leaves as soon as 8, 16 or 32 histories wait, else after 2 ms. It beat a plain 1 ms delay at concurrency 8
and 32 on the 2-core machine and costs about 1 ms more at concurrency 1. The served stack's seqrec has one client,
the Retriever, which coalesces its calls itself, so ``build-engines`` leaves both off by default."""


def seqrec_python_config(
    artifact: SASRecArtifact,
    *,
    name: str = SEQREC.name,
    max_batch_size: int = SEQREC_MAX_BATCH_SIZE,
    max_queue_delay_us: int | None = 1000,
    preferred_batch_sizes: Sequence[int] = (),
    instance_count: int = 1,
    gpu: bool = False,
    torch_threads: int = 1,
    model_format: SeqrecFormat = "torchscript",
) -> mc.ModelConfig:
    """Python-backend config; dynamic batching unless ``max_queue_delay_us`` is None. The parameters
    ``model_format`` and ``model_file`` tell the model which file to load and how; ``trim_histories`` whether
    the encoder takes a batch cut to its longest history."""
    if model_format not in MODEL_FILES:
        raise ValueError(f"seqrec model_format must be one of {get_args(SeqrecFormat)}, not {model_format!r}")
    inputs = [HISTORY.with_dims((artifact.config.max_len,))]
    config = python_backend_config(
        name,
        inputs=inputs,
        outputs=[USER_EMBEDDING.with_dims((artifact.config.hidden,))],
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=preferred_batch_sizes,
        instance_count=instance_count,
        gpu=gpu,
        parameters={
            "model_format": model_format,
            "model_file": MODEL_FILES[model_format],
            "torch_threads": str(torch_threads),
            "trim_histories": str(artifact.config.trimmed_histories).lower(),
        },
    )
    add_zero_warmup(config, inputs)
    return config


def seqrec_libtorch_config(
    artifact: SASRecArtifact, *, name: str = SEQREC.name, max_batch_size: int = 256
) -> mc.ModelConfig:
    """``pytorch_libtorch`` config for GPU deployments on the NGC image (inputs ``INPUT__0`` / ``OUTPUT__0``)."""
    inputs = [mc.ModelInput(name="INPUT__0", data_type=mc.TYPE_INT64, dims=[artifact.config.max_len])]
    config = mc.ModelConfig(
        name=name,
        platform="pytorch_libtorch",
        max_batch_size=max_batch_size,
        input=inputs,
        output=[mc.ModelOutput(name="OUTPUT__0", data_type=mc.TYPE_FP32, dims=[artifact.config.hidden])],
        instance_group=[mc.ModelInstanceGroup(count=1, kind=mc.ModelInstanceGroup.KIND_GPU)],
        default_model_filename=USER_ENCODER,
    )
    config.dynamic_batching.max_queue_delay_microseconds = 200
    return config


def write_seqrec_model(
    repository: Path, artifact: SASRecArtifact, *, model_format: SeqrecFormat = "torchscript", **options: object
) -> Path:
    """Install the python-backend ``seqrec`` model (config, model.py, the encoder file) into ``repository``.

    ``model_format="export"`` compiles the artifact's ExportedProgram with AOTInductor (tens of seconds on CPU)
    for the device of ``options["gpu"]``.
    """
    config = seqrec_python_config(artifact, model_format=model_format, **options)  # type: ignore[arg-type]
    if model_format == "export" and not artifact.exported_user_encoder_path.is_file():
        raise ArtifactError(
            f"sasrec {artifact.version} has no torch.export program ({artifact.exported_user_encoder_path.name}; "
            "versions written before it existed lack it): run `make train-sasrec`, or build with "
            "--seqrec-format torchscript"
        )
    model_dir = install_python_model(repository, config, SEQREC_SOURCE)
    model_file = model_dir / "1" / MODEL_FILES[model_format]
    if model_format == "export":
        compile_user_encoder(artifact.exported_user_encoder_path, model_file, "cuda" if options.get("gpu") else "cpu")
    else:
        shutil.copyfile(artifact.user_encoder_path, model_file)
    return model_dir
