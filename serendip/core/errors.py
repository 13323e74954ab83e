"""Domain errors of the data layer; each message names the field, file or item at fault."""

from __future__ import annotations


class DataError(ValueError):
    """Base class of every error raised by `serendip.core`."""


class SchemaError(DataError):
    """A table cannot be used at all: a required column is missing or has an unusable type."""


class ConfigError(DataError):
    """A generator, tree or curation parameter is out of its allowed range."""


class UnknownItemError(DataError, KeyError):
    """An item id is not part of the tree or catalogue it was looked up in."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TreeError(DataError):
    """A cluster tree is inconsistent (bad parent, duplicate description, wrong depth) or cannot be built."""


class VideoDecodeError(DataError):
    """A video file is missing, corrupt or shorter than the frames requested from it."""


class ArtifactError(DataError):
    """An artifact directory is missing, incomplete, or fails its manifest check."""


class CurationError(DataError):
    """Curation cannot produce a valid training set (e.g. a cluster has no example at all)."""
