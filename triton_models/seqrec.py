"""The ``seqrec`` Triton model: the SASRec TorchScript user encoder.

Two configs are generated from the same artifact: a python-backend model (the embedded default; the
CPU tritonserver here has only the python backend) and a ``pytorch_libtorch`` model for the NGC
tritonserver image on GPU nodes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from serendip.artifacts.sasrec import USER_ENCODER, SASRecArtifact
from triton_models.model_config import add_zero_warmup, install_python_model, python_backend_config
from triton_models.specs import HISTORY, SEQREC, USER_EMBEDDING

SEQREC_SOURCE = Path(__file__).parent / "python_models" / "seqrec.py"


def seqrec_python_config(
    artifact: SASRecArtifact,
    *,
    name: str = SEQREC.name,
    max_batch_size: int = 64,
    max_queue_delay_us: int | None = 1000,
    instance_count: int = 1,
    gpu: bool = False,
    torch_threads: int = 1,
) -> mc.ModelConfig:
    """Python-backend config; dynamic batching unless ``max_queue_delay_us`` is None."""
    inputs = [HISTORY.with_dims((artifact.config.max_len,))]
    config = python_backend_config(
        name,
        inputs=inputs,
        outputs=[USER_EMBEDDING.with_dims((artifact.config.hidden,))],
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        instance_count=instance_count,
        gpu=gpu,
        parameters={"torchscript_file": USER_ENCODER, "torch_threads": str(torch_threads)},
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


def write_seqrec_model(repository: Path, artifact: SASRecArtifact, **options: object) -> Path:
    """Install the python-backend ``seqrec`` model (config, model.py, TorchScript) into ``repository``."""
    config = seqrec_python_config(artifact, **options)  # type: ignore[arg-type]
    model_dir = install_python_model(repository, config, SEQREC_SOURCE)
    shutil.copyfile(artifact.user_encoder_path, model_dir / "1" / USER_ENCODER)
    return model_dir
