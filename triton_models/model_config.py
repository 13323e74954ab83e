"""Build Triton ``config.pbtxt`` files from ``model_config_pb2`` messages, never string templates."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_models.specs import TensorSpec  # defined with the models' specs; echo.py imports it from here


def _inputs(specs: Sequence[TensorSpec]) -> list[mc.ModelInput]:
    return [
        mc.ModelInput(
            name=s.name,
            data_type=mc.DataType.Value(s.data_type),
            dims=list(s.dims),
            optional=s.optional,
            allow_ragged_batch=s.ragged,
        )
        for s in specs
    ]


def _outputs(specs: Sequence[TensorSpec]) -> list[mc.ModelOutput]:
    return [mc.ModelOutput(name=s.name, data_type=mc.DataType.Value(s.data_type), dims=list(s.dims)) for s in specs]


def python_backend_config(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    max_batch_size: int = 0,
    max_queue_delay_us: int | None = None,
    preferred_batch_sizes: Sequence[int] = (),
    instance_count: int = 1,
    gpu: bool = False,
    parameters: Mapping[str, str] | None = None,
) -> mc.ModelConfig:
    """A python-backend model config; dynamic batching is on when ``max_queue_delay_us`` is given (the scheduler
    then also stops waiting as soon as it holds one of ``preferred_batch_sizes``)."""
    config = mc.ModelConfig(
        name=name,
        backend="python",
        max_batch_size=max_batch_size,
        input=_inputs(inputs),
        output=_outputs(outputs),
        instance_group=[
            mc.ModelInstanceGroup(
                count=instance_count,
                kind=mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU,
            )
        ],
    )
    if max_queue_delay_us is not None:
        if max_batch_size < 1:
            raise ValueError("dynamic batching needs max_batch_size >= 1")
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
        config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes)
    elif preferred_batch_sizes:
        raise ValueError("preferred batch sizes need dynamic batching (max_queue_delay_us)")
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    return config


def add_zero_warmup(config: mc.ModelConfig, inputs: Sequence[TensorSpec], batch_size: int = 1) -> None:
    """Warm the model with all-zero inputs before it reports ready (Triton's ``model_warmup``)."""
    warmup = config.model_warmup.add(name="zeros", batch_size=batch_size, count=1)
    for spec in inputs:
        warmup.inputs[spec.name].CopyFrom(
            mc.ModelWarmup.Input(data_type=mc.DataType.Value(spec.data_type), dims=list(spec.dims), zero_data=True)
        )


def write_config(config: mc.ModelConfig, model_dir: Path) -> Path:
    """Write ``config.pbtxt`` for ``config`` into ``model_dir`` and return its path."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "config.pbtxt"
    path.write_text(text_format.MessageToString(config))
    return path


def read_config(path: Path) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` back into a ModelConfig (raises text_format.ParseError if invalid)."""
    return text_format.Parse(Path(path).read_text(), mc.ModelConfig())


def install_python_model(repository: Path, config: mc.ModelConfig, model_source: Path, *, version: int = 1) -> Path:
    """Lay out ``<repository>/<name>/{config.pbtxt, <version>/model.py}`` and return the model dir."""
    model_dir = repository / config.name
    write_config(config, model_dir)
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_source, version_dir / "model.py")
    return model_dir
