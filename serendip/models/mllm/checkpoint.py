"""Create, save and load the planner model as a plain Hugging Face checkpoint directory.

A model directory holds what ``save_pretrained`` writes for the model (``config.json``, ``model.safetensors``)
and the tokenizer (``tokenizer.json``, chat template), plus:

* ``vision.json`` -- the :class:`VisionGeometry` frames are resized and patchified with;
* ``preprocessor_config.json`` -- the equivalent ``Qwen2VLImageProcessor`` settings, so engines that use
  transformers' own processor (TensorRT-LLM's input processor) cut frames into the same patches.

Loading uses ``AutoModelForImageTextToText`` / ``AutoTokenizer``, so any local Qwen2-VL-family checkpoint works.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from serendip.artifacts.mllm import VISION_FILE
from serendip.models.mllm.errors import ModelArtifactError
from serendip.models.mllm.tiny_config import TinyModelSpec, tiny_qwen2vl_config
from serendip.models.mllm.tokenizer import DEFAULT_VOCAB_SIZE, special_token_ids, train_tokenizer
from serendip.models.mllm.vision_inputs import DEFAULT_IMAGE_SIZE, VisionGeometry


@dataclass
class PlannerModel:
    """A model, its tokenizer and the frame geometry it was trained with."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    geometry: VisionGeometry

    @property
    def vocab_size(self) -> int:
        """Size of the model's output (logit) vocabulary."""
        return int(self.model.config.get_text_config().vocab_size)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_tiny_model(
    corpus: Iterable[str],
    spec: TinyModelSpec | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
) -> PlannerModel:
    """The embedded default: a tokenizer trained on ``corpus`` and a randomly initialised tiny Qwen2-VL."""
    from transformers import Qwen2VLForConditionalGeneration

    spec = spec or TinyModelSpec()
    tokenizer = train_tokenizer(corpus, vocab_size)
    config = tiny_qwen2vl_config(spec, len(tokenizer), special_token_ids(tokenizer))
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    return PlannerModel(model, tokenizer, VisionGeometry.from_model_config(config, image_size))


def save_model(planner: PlannerModel, directory: str | os.PathLike[str]) -> Path:
    """Write model, tokenizer, ``vision.json`` and ``preprocessor_config.json`` into ``directory``."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    planner.model.save_pretrained(target)
    planner.tokenizer.save_pretrained(target)
    (target / VISION_FILE).write_text(json.dumps(planner.geometry.to_dict(), indent=1) + "\n")
    geometry = planner.geometry
    pixels = geometry.image_size * geometry.image_size
    Qwen2VLImageProcessorPil(
        patch_size=geometry.patch_size,
        temporal_patch_size=geometry.temporal_patch_size,
        merge_size=geometry.spatial_merge_size,
        image_mean=list(geometry.mean),
        image_std=list(geometry.std),
        size={"shortest_edge": pixels, "longest_edge": pixels},
    ).save_pretrained(target)
    return target


def load_model(
    directory: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    image_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> PlannerModel:
    """Load any local Qwen2-VL-family checkpoint (ours or a base model) with its tokenizer, in eval mode.

    ``image_size`` overrides the frame side; without it, ``vision.json`` decides (default 32 if absent).
    """
    source = Path(directory)
    if not (source / "config.json").is_file():
        raise ModelArtifactError(f"{source} is not a Hugging Face model directory (no config.json)")
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype or torch.float32)
    if not hasattr(model.config, "vision_config") or not hasattr(model.config, "video_token_id"):
        raise ModelArtifactError(f"{source}: {type(model).__name__} is not a Qwen2-VL-family model")
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    vision_file = source / VISION_FILE
    if vision_file.is_file():
        geometry = VisionGeometry.from_dict(json.loads(vision_file.read_text()))
        if image_size is not None:
            geometry = VisionGeometry.from_dict({**geometry.to_dict(), "image_size": image_size})
    else:
        geometry = VisionGeometry.from_model_config(model.config, image_size or DEFAULT_IMAGE_SIZE)
    model.to(resolve_device(str(device))).eval()
    return PlannerModel(model, tokenizer, geometry)
