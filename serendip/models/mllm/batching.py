"""Chat messages + visual inputs -> token ids -> padded model batches (training: right-padded with labels).

What Qwen2-VL's processor does, without torchvision: the chat template renders one ``<|video_pad|>`` (or
``<|image_pad|>``) placeholder per visual, which is expanded to as many pad tokens as the visual has LLM tokens;
``mm_token_type_ids`` marks them (0 text, 1 image, 2 video) so the model can compute M-RoPE positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from serendip.models.mllm.errors import MllmConfigError
from serendip.models.mllm.vision_inputs import VisualInput, batch_visual_tensors

IGNORE_INDEX = -100
TEXT_TYPE, IMAGE_TYPE, VIDEO_TYPE = 0, 1, 2


@dataclass(frozen=True)
class EncodedPrompt:
    """One prompt's token ids (placeholders expanded), their modality types and its visual input."""

    input_ids: list[int]
    mm_token_type_ids: list[int]
    visual: VisualInput | None


@dataclass
class ModelBatch:
    """Padded tensors for one forward pass; ``labels`` only for training batches."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    visual_tensors: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None

    def model_inputs(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Keyword arguments of the model's ``forward`` / ``generate``, moved to ``device``."""
        inputs = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "mm_token_type_ids": self.mm_token_type_ids,
            **self.visual_tensors,
        }
        if self.labels is not None:
            inputs["labels"] = self.labels
        return {name: tensor.to(device) for name, tensor in inputs.items()}


class PromptEncoder:
    """Renders prompts with the tokenizer's chat template and the model config's vision token ids."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, model_config: Any) -> None:
        self.tokenizer = tokenizer
        self.image_token_id = int(model_config.image_token_id)
        self.video_token_id = int(model_config.video_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.eos_token_id = int(tokenizer.convert_tokens_to_ids(tokenizer.eos_token))
        self._placeholders = {
            "image": tokenizer.convert_ids_to_tokens(self.image_token_id),
            "video": tokenizer.convert_ids_to_tokens(self.video_token_id),
        }

    def encode_prompt(self, messages: list[dict[str, Any]], visual: VisualInput | None) -> EncodedPrompt:
        """Token ids of the rendered chat (ending with the assistant header), visual placeholders expanded."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        expected = {kind: text.count(token) for kind, token in self._placeholders.items()}
        wanted = {kind: int(visual is not None and visual.kind == kind) for kind in self._placeholders}
        if expected != wanted:
            raise MllmConfigError(f"prompt has placeholders {expected} but the visual input needs {wanted}")
        if visual is not None:
            placeholder = self._placeholders[visual.kind]
            text = text.replace(placeholder, placeholder * visual.num_tokens)
        input_ids = self.tokenizer(text, add_special_tokens=False).input_ids
        types = {self.image_token_id: IMAGE_TYPE, self.video_token_id: VIDEO_TYPE}
        return EncodedPrompt(input_ids, [types.get(token_id, TEXT_TYPE) for token_id in input_ids], visual)

    def encode_response(self, text: str) -> list[int]:
        """Token ids of a response followed by the end-of-turn token."""
        return [*self.tokenizer(text, add_special_tokens=False).input_ids, self.eos_token_id]

    def encode_text(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)


def _pad(rows: Sequence[list[int]], value: int, left: bool) -> torch.Tensor:
    width = max(len(row) for row in rows)
    padded = [([value] * (width - len(row)) + row) if left else (row + [value] * (width - len(row))) for row in rows]
    return torch.tensor(padded, dtype=torch.long)


def inference_batch(prompts: Sequence[EncodedPrompt], pad_token_id: int) -> ModelBatch:
    """Left-padded batch of prompts (generation continues every row from its last column)."""
    if not prompts:
        raise MllmConfigError("a batch needs at least one prompt")
    return ModelBatch(
        input_ids=_pad([prompt.input_ids for prompt in prompts], pad_token_id, left=True),
        attention_mask=_pad([[1] * len(prompt.input_ids) for prompt in prompts], 0, left=True),
        mm_token_type_ids=_pad([prompt.mm_token_type_ids for prompt in prompts], TEXT_TYPE, left=True),
        visual_tensors=batch_visual_tensors([prompt.visual for prompt in prompts]),
    )


def training_batch(prompts: Sequence[EncodedPrompt], responses: Sequence[list[int]], pad_token_id: int) -> ModelBatch:
    """Right-padded prompt+response rows; labels are the response tokens only (prompt and padding ignored)."""
    if len(prompts) != len(responses) or not prompts:
        raise MllmConfigError(f"{len(prompts)} prompts and {len(responses)} responses: need equal, non-zero counts")
    rows = [prompt.input_ids + response for prompt, response in zip(prompts, responses, strict=True)]
    labels = [
        [IGNORE_INDEX] * len(prompt.input_ids) + response for prompt, response in zip(prompts, responses, strict=True)
    ]
    types = [
        prompt.mm_token_type_ids + [TEXT_TYPE] * len(response)
        for prompt, response in zip(prompts, responses, strict=True)
    ]
    return ModelBatch(
        input_ids=_pad(rows, pad_token_id, left=False),
        attention_mask=_pad([[1] * len(row) for row in rows], 0, left=False),
        mm_token_type_ids=_pad(types, TEXT_TYPE, left=False),
        visual_tensors=batch_visual_tensors([prompt.visual for prompt in prompts]),
        labels=_pad(labels, IGNORE_INDEX, left=False),
    )
