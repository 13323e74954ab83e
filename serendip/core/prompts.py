"""Prompt and target texts of the SFT examples, one function per side so training and serving share them.

Variants (paper Fig. 2): ``text_only`` (title), ``video_only`` (frames), ``video_text`` (frames + title),
``video_cot`` (frames; the target first says what the video shows, then names the cluster), and MMSRARec's
``video_cot_rag``: ``video_cot`` whose prompt also carries the keywords of the items the context's viewers engaged
with (collaborative context from the logs; "none yet" for an item nobody has engaged with). Its SFT rows are the
``video_cot`` rows with that prompt (``rag_prompt``), so curation only writes ``VARIANTS``.
Frame modes: ``none`` (text only), ``1``/``2``/``4``/``8`` uniformly sampled frames, or ``thumbnail``.
"""

from __future__ import annotations

from serendip.core.errors import ConfigError

VARIANTS = ("text_only", "video_only", "video_text", "video_cot")
VIDEO_VARIANTS = ("video_only", "video_text", "video_cot")
RAG_VARIANT = "video_cot_rag"
"""The keyword-RAG variant: trained on the ``video_cot`` rows, its prompt adds the related keywords."""
FRAME_COUNTS = (1, 2, 4, 8)
THUMBNAIL = "thumbnail"
NO_FRAMES = "none"
QUESTION = "Which interest cluster would be a serendipitous next step for its viewer?"
COT_INSTRUCTION = "First say what the video shows, then name the cluster."
RELATED_LEAD = "Viewers of this video also engaged with: "
NO_RELATED = "none yet"
"""What the RAG prompt says when the context has no related keywords (a fresh upload, an item with no log)."""
ANSWER_MARKER = "cluster: "
"""In chain-of-thought targets the cluster description follows this marker on the last line."""
THOUGHT_LEAD = "the video shows "
"""How every chain-of-thought target begins (the item's own thought follows it)."""
THOUGHT_STOP_WORDS = frozenset(
    "the a an and or of in on at to with for from by is are was were be it its this that these those as into "
    "over under then than but not no video shows".split()
)
"""Words a thought is not matched on: function words and the lead's own."""


def prompt_text(variant: str, title: str, related_keywords: str = "") -> str:
    """User-turn text of ``variant``; the caller adds the frames (as video or image inputs) for video variants.
    ``related_keywords`` (space-separated words) is read by ``video_cot_rag`` only."""
    if variant == "text_only":
        return f"Video title: {title}\n{QUESTION}"
    if variant == "video_only":
        return f"Watch the video.\n{QUESTION}"
    if variant == "video_text":
        return f"Watch the video. Video title: {title}\n{QUESTION}"
    if variant == "video_cot":
        return f"Watch the video.\n{QUESTION} {COT_INSTRUCTION}"
    if variant == RAG_VARIANT:
        return rag_prompt(related_keywords)
    raise ConfigError(f"unknown prompt variant {variant!r}; expected one of {(*VARIANTS, RAG_VARIANT)}")


def rag_prompt(related_keywords: str) -> str:
    """The ``video_cot_rag`` user turn: the ``video_cot`` question after the related keywords (or NO_RELATED)."""
    related = " ".join(related_keywords.split()) or NO_RELATED
    return f"Watch the video. {RELATED_LEAD}{related}.\n{QUESTION} {COT_INSTRUCTION}"


def target_text(variant: str, description: str, cot_text: str | None = None) -> str:
    """Assistant-turn text: the description, preceded by the video description for ``video_cot``."""
    if variant in ("video_cot", RAG_VARIANT):
        if not cot_text:
            raise ConfigError("video_cot targets need a cot_text (what the video shows)")
        period = "" if cot_text.endswith(".") else "."
        return f"{THOUGHT_LEAD}{cot_text}{period}\n{ANSWER_MARKER}{description}"
    if variant not in VARIANTS:
        raise ConfigError(f"unknown prompt variant {variant!r}; expected one of {VARIANTS}")
    return description


def answer_description(generated: str) -> str:
    """The cluster description in a generated answer (text after the last ``ANSWER_MARKER``, if any)."""
    _, marker, tail = generated.rpartition(ANSWER_MARKER)
    return (tail if marker else generated).strip()


def thought_words(thought: str) -> frozenset[str]:
    """Content words of a chain-of-thought text (lower case, letters only, at least 3 long, THOUGHT_STOP_WORDS out):
    what a generated thought and the item's own are compared on."""
    words = "".join(c if c.isalpha() else " " for c in thought.lower()).split()
    return frozenset(w for w in words if len(w) >= 3 and w not in THOUGHT_STOP_WORDS)
