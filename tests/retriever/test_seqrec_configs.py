"""Both seqrec configs (python backend here, pytorch_libtorch for the NGC image) parse back as written."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_models.model_config import read_config, write_config
from triton_models.seqrec import seqrec_libtorch_config, seqrec_python_config
from triton_models.specs import SEQREC


def test_python_backend_config(trained_sasrec, tmp_path: Path) -> None:
    artifact = trained_sasrec[2]
    config = read_config(write_config(seqrec_python_config(artifact, max_queue_delay_us=750), tmp_path / "seqrec"))
    assert config.backend == "python" and config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds == 750
    assert list(config.input[0].dims) == [artifact.config.max_len]
    assert config.input[0].data_type == mc.TYPE_INT64
    assert list(config.output[0].dims) == [artifact.config.hidden]
    assert config.parameters["torchscript_file"].string_value == "user_encoder.pt"
    warmup = config.model_warmup[0]
    assert warmup.inputs["HISTORY"].zero_data and list(warmup.inputs["HISTORY"].dims) == [artifact.config.max_len]


def test_python_backend_config_is_the_clients_spec(trained_sasrec) -> None:
    """The config's tensors are those the Retriever's client builds its requests from."""
    config = seqrec_python_config(trained_sasrec[2])
    for served, specs in ((config.input, SEQREC.inputs), (config.output, SEQREC.outputs)):
        assert [(t.name, mc.DataType.Name(t.data_type)) for t in served] == [(s.name, s.data_type) for s in specs]
    assert config.name == SEQREC.name


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
