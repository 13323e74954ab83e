"""Files the explorer serves from a base directory: only images, only inside the base, whatever the path says."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".svg": "image/svg+xml"}
"""Suffix -> media type of the files the explorer serves; anything else is refused."""


def resolve_inside(base: Path, relative: str) -> Path | None:
    """The image file ``relative`` names under ``base``, or None when it lies outside, is no image or is missing.

    ``..`` components, absolute paths, NUL bytes and symbolic links leading out of ``base`` all give None: the
    path is resolved (links followed) first and must then still be under the resolved ``base``.
    """
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        return None
    base_resolved = base.resolve()
    try:
        candidate = (base_resolved / parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not candidate.is_relative_to(base_resolved) or not candidate.is_file():
        return None
    return candidate if candidate.suffix.lower() in IMAGE_TYPES else None


def media_type(path: Path) -> str:
    """The media type of a file :func:`resolve_inside` returned."""
    return IMAGE_TYPES[path.suffix.lower()]


def relative_url_path(base: Path, path: Path) -> str | None:
    """``path`` relative to ``base`` as a URL path (``/`` separators), or None when it is not under ``base``."""
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return None
