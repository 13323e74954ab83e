"""The embedded default model: a tiny Qwen2-VL (about 3 M parameters) built from a config, never downloaded.

Qwen2-VL is used because transformers (``Qwen2VLForConditionalGeneration``, ``AutoModelForImageTextToText``)
and TensorRT-LLM (PyTorch LLM API, image and video input) both support it, and it takes several frames natively
as one video (frames are paired by ``temporal_patch_size`` and merged 2x2 spatially into LLM tokens).

Multimodal RoPE splits each attention head's rotary half-dimension into (temporal, height, width) sections;
``sum(mrope_section) * 2 == head_dim`` must hold. The released models use ``head_dim`` 128 with sections
(16, 24, 24), and TensorRT-LLM's Qwen2-VL kernels assume exactly that. The CPU default here uses 4 heads of 64
(sections scaled to (8, 12, 12)); ``text_head_dim=128`` (2 heads at d=256) gives the TensorRT-LLM-compatible
geometry at the same parameter count, see docs/mllm.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import Qwen2VLConfig

from serendip.models.mllm.errors import MllmConfigError

RELEASED_HEAD_DIM = 128
RELEASED_MROPE_SECTION = (16, 24, 24)


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of the embedded tiny Qwen2-VL; every field is recorded in the training manifest."""

    text_hidden_size: int = 256
    text_layers: int = 4
    text_head_dim: int = 64
    text_kv_heads: int = 2
    text_intermediate_size: int = 512
    vision_embed_dim: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    patch_size: int = 8
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    max_position_embeddings: int = 2048

    def to_dict(self) -> dict[str, int]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def mrope_section_for(head_dim: int) -> list[int]:
    """Scale the released (16, 24, 24) M-RoPE sections to ``head_dim`` (must be a multiple of 16)."""
    if head_dim % 16:
        raise MllmConfigError(f"text_head_dim must be a multiple of 16 for M-RoPE sections, got {head_dim}")
    return [section * head_dim // RELEASED_HEAD_DIM for section in RELEASED_MROPE_SECTION]


def tiny_qwen2vl_config(spec: TinyModelSpec, vocab_size: int, special_token_ids: dict[str, int]) -> Qwen2VLConfig:
    """A Qwen2-VL config of the given sizes whose special-token ids match the locally trained tokenizer.

    ``special_token_ids`` maps ``image_token_id``, ``video_token_id``, ``vision_start_token_id``,
    ``vision_end_token_id``, ``bos_token_id``, ``eos_token_id`` and ``pad_token_id`` to ids.
    """
    if spec.text_hidden_size % spec.text_head_dim:
        raise MllmConfigError(
            f"text_hidden_size {spec.text_hidden_size} is not a multiple of text_head_dim {spec.text_head_dim}"
        )
    num_heads = spec.text_hidden_size // spec.text_head_dim
    if num_heads % spec.text_kv_heads:
        raise MllmConfigError(f"{num_heads} attention heads cannot be grouped into {spec.text_kv_heads} KV heads")
    if spec.vision_embed_dim % spec.vision_heads:
        raise MllmConfigError(
            f"vision_embed_dim {spec.vision_embed_dim} is not a multiple of vision_heads {spec.vision_heads}"
        )
    required = {"image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"}
    required |= {"bos_token_id", "eos_token_id", "pad_token_id"}
    if missing := sorted(required - special_token_ids.keys()):
        raise MllmConfigError(f"special_token_ids lacks {missing}")
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": spec.text_hidden_size,
        "intermediate_size": spec.text_intermediate_size,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "max_window_layers": spec.text_layers,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": mrope_section_for(spec.text_head_dim),
        },
        "bos_token_id": special_token_ids["bos_token_id"],
        "eos_token_id": special_token_ids["eos_token_id"],
        "pad_token_id": special_token_ids["pad_token_id"],
    }
    vision_config = {
        "depth": spec.vision_layers,
        "embed_dim": spec.vision_embed_dim,
        "hidden_size": spec.text_hidden_size,
        "num_heads": spec.vision_heads,
        "mlp_ratio": 4,
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "spatial_merge_size": spec.spatial_merge_size,
    }
    return Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=special_token_ids["image_token_id"],
        video_token_id=special_token_ids["video_token_id"],
        vision_start_token_id=special_token_ids["vision_start_token_id"],
        vision_end_token_id=special_token_ids["vision_end_token_id"],
        tie_word_embeddings=True,
    )
