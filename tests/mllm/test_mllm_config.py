"""The generated ``mllm`` Triton config: parsed back with model_config_pb2, tensors from the one spec, CPU niceness."""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from serendip.models.mllm.checkpoint import PlannerModel, save_model
from serendip.models.mllm.examples import PlanningTask
from serendip.models.mllm.grammar import build_answer_grammar
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.models.mllm.prompts import PromptVariant
from tests.mllm.conftest import TWO_FRAMES
from triton_models.mllm_model import mllm_config
from triton_models.specs import MLLM


def test_mllm_config_round_trips_with_the_spec_tensors_and_niceness(
    tmp_path, untrained_planner: PlannerModel, task: PlanningTask
) -> None:
    save_model(untrained_planner, tmp_path / "model")
    build_answer_grammar(task.descriptions, 3, PromptVariant.VIDEO_COT, max_reasoning_chars=20).save(tmp_path)
    PlannerSpec(PromptVariant.VIDEO_COT, TWO_FRAMES, level=3, delta=1).save(tmp_path)
    written = text_format.MessageToString(mllm_config(tmp_path, max_batch_size=8, cpu_nice=7))
    config = text_format.Parse(written, model_config_pb2.ModelConfig())
    assert config.name == MLLM.name and config.max_batch_size == 8
    assert [tensor.name for tensor in config.input] == [spec.name for spec in MLLM.inputs]
    assert [tensor.name for tensor in config.output] == [spec.name for spec in MLLM.outputs]
    assert config.parameters["cpu_nice"].string_value == "7"
    assert config.parameters["frames"].string_value == "2"
