"""The paper's prompt variants (Fig. 2) as chat messages, and how an answer is laid out for grammar and scorer.

The prompt and target *texts* are the data layer's (``serendip.core.prompts``: the SFT rows were curated with
them, the engine renders serving prompts with them, so training and serving share one source):

* ``text_only``  -- Prompt 1: the context video's title, no pixels;
* ``video_only`` -- Prompt 2: the video (sampled frames or thumbnail), no title;
* ``video_text`` -- Prompt 3: video and title, answer directly;
* ``video_cot``  -- Prompt 4: the video; chain of thought: first say what the video shows, then name the cluster
  (``"the video shows <...>.\\ncluster: <description>"``);
* ``video_cot_rag`` -- MMSRARec's retrieval-augmented prompt: ``video_cot`` plus the keywords of the items the
  context's viewers engaged with (``related_keywords``, from the ``keywords`` artifact; none for a fresh upload).

This module adds what the model side needs: the chat turn with an image/video placeholder, the frame setting
(``1``/``2``/``4``/``8`` sampled frames as a video, or the ``thumbnail`` as an image), and the split of a
response into reasoning and answer. A description follows either the assistant header's newline (direct) or
``"\\ncluster:"`` plus one space (CoT); byte-level BPE (ours and Qwen's) always starts a new token there, so the
answer tokens are ``tokenize(ANSWER_LEAD + description)`` in both training and scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from serendip.core import prompts as data_prompts
from serendip.models.mllm.errors import MllmConfigError


class PromptVariant(StrEnum):
    """Input modality and prompting strategy of Fig. 2 (values are ``serendip.core.prompts.VARIANTS``)."""

    TEXT_ONLY = "text_only"
    VIDEO_ONLY = "video_only"
    VIDEO_TEXT = "video_text"
    VIDEO_COT = "video_cot"
    VIDEO_COT_RAG = data_prompts.RAG_VARIANT

    @property
    def uses_video(self) -> bool:
        """Whether the prompt carries pixels."""
        return self is not PromptVariant.TEXT_ONLY

    @property
    def is_cot(self) -> bool:
        """Whether the response reasons before answering."""
        return self in (PromptVariant.VIDEO_COT, PromptVariant.VIDEO_COT_RAG)

    @property
    def uses_related(self) -> bool:
        """Whether the prompt carries the context's related keywords (collaborative context)."""
        return self is PromptVariant.VIDEO_COT_RAG

    @property
    def curated_variant(self) -> PromptVariant:
        """The variant whose curated SFT rows this one trains on (``video_cot`` for the RAG variant)."""
        return PromptVariant.VIDEO_COT if self.uses_related else self


THUMBNAIL = data_prompts.THUMBNAIL
NO_FRAMES = data_prompts.NO_FRAMES
REASONING_END = "\n" + data_prompts.ANSWER_MARKER.rstrip()
"""Last characters of the CoT reasoning part, right before the answer (``"\\ncluster:"``)."""
ANSWER_LEAD = data_prompts.ANSWER_MARKER[len(data_prompts.ANSWER_MARKER.rstrip()) :]
"""Characters between REASONING_END and the description (one space); empty for direct answers."""


@dataclass(frozen=True)
class VisualSetting:
    """Pixels a prompt carries: ``frames`` uniformly sampled frames (one video) or the thumbnail (one image)."""

    frames: int = 4
    thumbnail: bool = False

    def __post_init__(self) -> None:
        if not self.thumbnail and self.frames < 1:
            raise MllmConfigError(f"a visual setting needs >= 1 frame or the thumbnail, got frames={self.frames}")

    @property
    def name(self) -> str:
        """The curation's frame-mode spelling: ``"4"`` or ``"thumbnail"``."""
        return THUMBNAIL if self.thumbnail else str(self.frames)

    @classmethod
    def parse(cls, text: str) -> VisualSetting:
        """Inverse of :attr:`name` (``"1"``, ``"8"``, ``"thumbnail"``)."""
        if text == THUMBNAIL:
            return cls(frames=1, thumbnail=True)
        if text.isdigit() and int(text) >= 1:
            return cls(frames=int(text))
        raise MllmConfigError(f"frames must be a positive frame count or {THUMBNAIL!r}, got {text!r}")


def frame_mode(variant: PromptVariant, visual: VisualSetting) -> str:
    """The curation's ``frames`` column value for a variant and visual setting (``"none"`` for text only)."""
    return visual.name if variant.uses_video else NO_FRAMES


def prompt_text(variant: PromptVariant, title: str, related_keywords: str = "") -> str:
    """User-turn text of ``variant`` (``serendip.core.prompts.prompt_text``)."""
    return data_prompts.prompt_text(str(variant), " ".join(title.split()), related_keywords)


def target_text(variant: PromptVariant, description: str, video_description: str | None = None) -> str:
    """Assistant-turn text the model is trained to produce (``serendip.core.prompts.target_text``)."""
    return data_prompts.target_text(str(variant), description, video_description)


def chat_messages(text: str, visual: VisualSetting | None) -> list[dict[str, Any]]:
    """One user turn: the image (thumbnail) or video placeholder first, then ``text``."""
    parts: list[dict[str, Any]] = []
    if visual is not None:
        parts.append({"type": "image" if visual.thumbnail else "video"})
    parts.append({"type": "text", "text": text})
    return [{"role": "user", "content": parts}]


@dataclass(frozen=True)
class ParsedResponse:
    """A generated response split into the optional reasoning and the answer text."""

    reasoning: str | None
    answer: str


def parse_response(variant: PromptVariant, text: str) -> ParsedResponse:
    """Split a response; a CoT response without the answer marker yields empty answer and all text as reasoning."""
    if not variant.is_cot:
        return ParsedResponse(None, data_prompts.answer_description(text))
    reasoning, marker, _ = text.rpartition(REASONING_END)
    if not marker:
        return ParsedResponse(text.strip(), "")
    return ParsedResponse(reasoning.strip(), data_prompts.answer_description(text))


def answer_lead(variant: PromptVariant) -> str:
    """Text that precedes the description inside the answer tokens (see the module docstring)."""
    return ANSWER_LEAD if variant.is_cot else ""
