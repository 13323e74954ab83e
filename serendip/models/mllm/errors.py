"""Domain errors of the MLLM package; each message names the file, field or value at fault."""

from __future__ import annotations


class MllmError(ValueError):
    """Base class of every error raised by `serendip.models.mllm`."""


class MllmConfigError(MllmError):
    """A model, tokenizer, prompt or training parameter is out of its allowed range or inconsistent."""


class GrammarError(MllmError):
    """The answer grammar cannot be built, does not match the tokenizer, or an output is not in it."""


class ModelArtifactError(MllmError):
    """A model or MLLM artifact directory is missing a file or was written by another format version."""


class TrainingDataError(MllmError):
    """SFT examples are missing, empty, or lack a field their prompt variant needs."""


class ContextError(MllmError):
    """A planning context lacks the title or pixels its prompt variant needs, or names an unknown cluster."""
