"""The ``mllm`` Triton model: config generation and layout of the MLLM artifact inside the repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from serendip.artifacts.mllm import RELATED_KEYWORDS_FILE, VISION_FILE
from serendip.models.mllm.grammar import DESCRIPTIONS_FILE, GRAMMAR_FILE
from serendip.models.mllm.planner_spec import PLANNER_FILE, PlannerSpec
from serendip.models.mllm.vision_inputs import VisionGeometry
from triton_models.engines import EngineKind
from triton_models.model_config import add_zero_warmup, install_python_model, python_backend_config
from triton_models.specs import FRAMES, ITEM_ID, MLLM, NUM_CLUSTERS, THUMBNAIL, TensorSpec

MLLM_SOURCE = Path(__file__).parent / "python_models" / "mllm.py"
ARTIFACT_SUBDIR = "planner"
ADAPTER_CONFIG = "adapter_config.json"


def _warmup_inputs(spec: PlannerSpec, geometry: VisionGeometry) -> list[TensorSpec]:
    """Concrete all-zero inputs for the artifact's prompt variant (one ranking before 'ready')."""
    inputs = [ITEM_ID, NUM_CLUSTERS]
    if spec.visual is not None and spec.variant.uses_video:
        side = geometry.image_size
        if spec.visual.thumbnail:
            inputs.append(THUMBNAIL.with_dims((side, side, 3)))
        else:
            inputs.append(FRAMES.with_dims((spec.visual.frames, side, side, 3)))
    return inputs


def mllm_config(
    artifact: Path,
    *,
    engine: EngineKind = EngineKind.TORCH,
    gpu: bool = False,
    instance_count: int = 1,
    max_batch_size: int = 16,
    max_queue_delay_us: int = 5000,
    torch_threads: int = 1,
    cpu_nice: int = 10,
) -> mc.ModelConfig:
    """Python-backend config of the ``mllm`` model for the MLLM artifact in ``artifact``.

    On CPU the model's process runs at niceness ``cpu_nice``: where the MLLM shares the cores with the services,
    serving requests preempt its (nearline, batch) inference instead of stalling behind it.
    """
    spec = PlannerSpec.load(artifact)
    geometry = VisionGeometry.from_dict(json.loads((artifact / spec.model_dir / VISION_FILE).read_text()))
    config = python_backend_config(
        MLLM.name,
        inputs=MLLM.inputs,
        outputs=MLLM.outputs,
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        instance_count=instance_count,
        gpu=gpu or engine is EngineKind.TENSORRT_LLM,
        parameters={
            "engine": str(engine),
            "artifact_subdir": ARTIFACT_SUBDIR,
            "torch_threads": str(torch_threads),
            "cpu_nice": str(cpu_nice),
            # What clients should send: "" (title only), a frame count such as "4", or "thumbnail".
            "frames": spec.visual.name if spec.visual is not None and spec.variant.uses_video else "",
            "variant": str(spec.variant),
        },
    )
    add_zero_warmup(config, _warmup_inputs(spec, geometry))
    return config


def copy_serving_files(artifact: Path, target: Path) -> None:
    """Copy what engines load (planner.json, grammar, descriptions, a RAG planner's related keywords, merged
    model) from ``artifact`` to ``target``.

    A LoRA adapter left in the model directory is merged into its base model first (peft).
    """
    spec = PlannerSpec.load(artifact)
    target.mkdir(parents=True)
    for name in (PLANNER_FILE, GRAMMAR_FILE, DESCRIPTIONS_FILE):
        shutil.copy2(artifact / name, target / name)
    if spec.variant.uses_related:
        shutil.copy2(artifact / RELATED_KEYWORDS_FILE, target / RELATED_KEYWORDS_FILE)
    model_source = artifact / spec.model_dir
    if (model_source / ADAPTER_CONFIG).is_file():
        merge_lora(model_source, target / spec.model_dir)
    else:
        shutil.copytree(model_source, target / spec.model_dir)


def merge_lora(adapter_dir: Path, output_dir: Path) -> None:
    """Merge a peft LoRA adapter into its local base model (``base_model_name_or_path``) and save the result."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    base_path = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    base = AutoModelForImageTextToText.from_pretrained(base_path)
    PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().save_pretrained(output_dir)
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else Path(base_path)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(output_dir)
    for extra in (VISION_FILE, "preprocessor_config.json"):
        for source in (adapter_dir / extra, Path(base_path) / extra):
            if source.is_file():
                shutil.copy2(source, output_dir / extra)
                break


def write_mllm_model(repository: Path, artifact: Path, **options: object) -> Path:
    """Install the ``mllm`` model (config, model.py, serving files of ``artifact``) into ``repository``."""
    config = mllm_config(artifact, **options)  # type: ignore[arg-type]
    model_dir = install_python_model(repository, config, MLLM_SOURCE)
    copy_serving_files(artifact, model_dir / "1" / ARTIFACT_SUBDIR)
    return model_dir
