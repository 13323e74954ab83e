"""Both seqrec configs (python backend here, pytorch_libtorch for the NGC image) parse back as written; the
python backend's format (TorchScript or torch.export) is selected by build-engines."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from serendip.artifacts.sasrec import EXPORTED_USER_ENCODER, SASRecArtifact
from serendip.core.errors import ArtifactError
from triton_models import build_engines
from triton_models.model_config import read_config, write_config
from triton_models.seqrec import (
    CONCURRENT_CLIENTS_PREFERRED_BATCH_SIZES,
    CONCURRENT_CLIENTS_QUEUE_DELAY_US,
    USER_ENCODER_PACKAGE,
    seqrec_libtorch_config,
    seqrec_python_config,
    write_seqrec_model,
)
from triton_models.specs import SEQREC


def test_concurrent_clients_batching_reaches_the_config(trained_sasrec, tmp_path: Path) -> None:
    options = {
        "max_queue_delay_us": CONCURRENT_CLIENTS_QUEUE_DELAY_US,
        "preferred_batch_sizes": CONCURRENT_CLIENTS_PREFERRED_BATCH_SIZES,
    }
    config = read_config(write_config(seqrec_python_config(trained_sasrec[2], **options), tmp_path / "seqrec"))
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 32] and config.max_batch_size == 64


def test_python_backend_config(trained_sasrec, tmp_path: Path) -> None:
    artifact = trained_sasrec[2]
    config = read_config(write_config(seqrec_python_config(artifact, max_queue_delay_us=750), tmp_path / "seqrec"))
    assert config.backend == "python" and config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds == 750
    assert list(config.input[0].dims) == [artifact.config.max_len]
    assert config.input[0].data_type == mc.TYPE_INT64
    assert list(config.output[0].dims) == [artifact.config.hidden]
    assert config.parameters["model_format"].string_value == "torchscript"
    assert config.parameters["model_file"].string_value == "user_encoder.pt"
    assert config.parameters["trim_histories"].string_value == "true"  # the encoder was written by this code
    warmup = config.model_warmup[0]
    assert warmup.inputs["HISTORY"].zero_data and list(warmup.inputs["HISTORY"].dims) == [artifact.config.max_len]


def test_python_backend_config_is_the_clients_spec(trained_sasrec) -> None:
    """The config's tensors are those the Retriever's client builds its requests from."""
    config = seqrec_python_config(trained_sasrec[2])
    for served, specs in ((config.input, SEQREC.inputs), (config.output, SEQREC.outputs)):
        assert [(t.name, mc.DataType.Name(t.data_type)) for t in served] == [(s.name, s.data_type) for s in specs]
    assert config.name == SEQREC.name


def test_encoders_written_before_trimming_get_full_length_histories(trained_sasrec) -> None:
    """A version without ``trimmed_histories`` in its model config (written by older code) is never trimmed."""
    artifact = trained_sasrec[2]
    legacy = dataclasses.replace(artifact, config=dataclasses.replace(artifact.config, trimmed_histories=False))
    assert seqrec_python_config(legacy).parameters["trim_histories"].string_value == "false"


def test_unbatched_python_config_has_no_dynamic_batching(trained_sasrec) -> None:
    config = seqrec_python_config(trained_sasrec[2], max_queue_delay_us=None)
    assert not config.HasField("dynamic_batching")


def test_libtorch_config_for_gpu_deployments(trained_sasrec) -> None:
    artifact = trained_sasrec[2]
    text = text_format.MessageToString(seqrec_libtorch_config(artifact))
    config = text_format.Parse(text, mc.ModelConfig())
    assert config.platform == "pytorch_libtorch" and config.default_model_filename == "user_encoder.pt"
    assert [i.name for i in config.input] == ["INPUT__0"] and [o.name for o in config.output] == ["OUTPUT__0"]
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_export_format_config_names_the_package(trained_sasrec) -> None:
    config = seqrec_python_config(trained_sasrec[2], model_format="export")
    assert config.parameters["model_format"].string_value == "export"
    assert config.parameters["model_file"].string_value == USER_ENCODER_PACKAGE
    with pytest.raises(ValueError, match="model_format"):
        seqrec_python_config(trained_sasrec[2], model_format="onnx")  # type: ignore[arg-type]


def test_export_format_needs_the_artifacts_torch_export_program(trained_sasrec, tmp_path: Path) -> None:
    """A sasrec version written before the ExportedProgram existed is refused with the command to run."""
    older = tmp_path / "v-older"
    shutil.copytree(trained_sasrec[2].directory, older)
    (older / EXPORTED_USER_ENCODER).unlink()
    with pytest.raises(ArtifactError, match="train-sasrec"):
        write_seqrec_model(tmp_path / "repository", SASRecArtifact.load(older), model_format="export")
    assert not (tmp_path / "repository").exists()


def test_build_engines_selects_the_seqrec_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_engines, "run", lambda job: job)
    assert build_engines.main([]).seqrec_format == "torchscript"
    assert build_engines.main(["--seqrec-format", "export"]).seqrec_format == "export"
