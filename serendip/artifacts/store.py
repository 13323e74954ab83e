"""Versioned artifact directories: written to a temp dir, renamed atomically, described by manifest.json.

Layout: ``<root>/<kind>/<version>/`` with ``manifest.json`` inside and ``<root>/<kind>/LATEST`` holding the
newest version's name. A reader never sees a half-written version: the directory only appears (under its
final name) once every file and the manifest are complete, and ``LATEST`` is replaced with ``os.replace``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serendip.core.errors import ArtifactError

MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
MANIFEST_FORMAT = "serendip.artifact/v1"
DEFAULT_ARTIFACTS_ROOT = Path("artifacts")


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def parameters_sha256(parameters: Mapping[str, Any]) -> str:
    """Hex SHA-256 of a parameter dict in canonical JSON (sorted keys)."""
    canonical = json.dumps(parameters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def _hash_tree(directory: Path, bulk_dirs: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Hash every file; return (listed files, bulk-dir summaries, content hash over all files)."""
    bulk = tuple(bulk_dirs)
    listed: dict[str, Any] = {}
    summaries: dict[str, dict[str, Any]] = {}
    bulk_digests: dict[str, Any] = {}
    content_digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative == MANIFEST_NAME:
            continue
        sha = file_sha256(path)
        size = path.stat().st_size
        content_digest.update(f"{relative}\t{sha}\n".encode())
        top = relative.split("/", 1)[0]
        if "/" in relative and top in bulk:
            summary = summaries.setdefault(top + "/", {"count": 0, "bytes": 0})
            summary["count"] += 1
            summary["bytes"] += size
            bulk_digests.setdefault(top, hashlib.sha256()).update(f"{relative}\t{sha}\n".encode())
        else:
            listed[relative] = {"sha256": sha, "bytes": size}
    for top, digest in bulk_digests.items():
        summaries[top + "/"]["sha256"] = digest.hexdigest()
    return listed, summaries, content_digest.hexdigest()


@dataclass
class ArtifactWriter:
    """Context manager that builds one artifact version in a temp dir and publishes it atomically.

    Usage::

        with ArtifactWriter(root, "world", parameters) as writer:
            table.to_parquet(writer.dir / "items.parquet")
            writer.counts["items"] = len(table)
        writer.final_dir  # artifacts/world/<version>

    Files under ``bulk_dirs`` (e.g. ``videos/``) are hashed but summarised per directory in the manifest
    instead of listed one by one; on an exception the temp dir is removed and nothing is published.
    """

    root: Path
    kind: str
    parameters: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    bulk_dirs: tuple[str, ...] = ("videos", "thumbnails")
    counts: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    dir: Path = field(init=False)
    final_dir: Path = field(init=False)

    def __enter__(self) -> ArtifactWriter:
        kind_dir = Path(self.root) / self.kind
        kind_dir.mkdir(parents=True, exist_ok=True)
        if not self.version:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            self.version = f"{stamp}-{parameters_sha256(self.parameters)[:8]}"
        base_version, suffix = self.version, 1
        while (kind_dir / self.version).exists():
            suffix += 1
            self.version = f"{base_version}-{suffix}"
        self.final_dir = kind_dir / self.version
        self.dir = kind_dir / f".tmp-{self.version}-{os.getpid()}"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        try:
            self._publish()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _publish(self) -> None:
        files, bulk, content_sha = _hash_tree(self.dir, self.bulk_dirs)
        manifest = {
            "format": MANIFEST_FORMAT,
            "kind": self.kind,
            "version": self.version,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "code": {"git_commit": _git_commit()},
            "inputs": self.inputs,
            "parameters": self.parameters,
            "parameters_sha256": parameters_sha256(self.parameters),
            "counts": self.counts,
            "files": files,
            "bulk_files": bulk,
            "content_sha256": content_sha,
        }
        manifest_path = self.dir / MANIFEST_NAME
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(self.dir, self.final_dir)
        latest_tmp = self.final_dir.parent / f".{LATEST_NAME}.{os.getpid()}"
        latest_tmp.write_text(self.version + "\n")
        os.replace(latest_tmp, self.final_dir.parent / LATEST_NAME)


def resolve_artifact(path: str | os.PathLike[str], kind: str | None = None) -> Path:
    """Return a version directory: ``path`` itself if it holds a manifest, else the version its LATEST names.

    ``path`` may be a version dir (``artifacts/world/2026…``), a kind dir (``artifacts/world``), or, when
    ``kind`` is given, an artifacts root (``artifacts``).
    """
    candidate = Path(path)
    if kind is not None and not (candidate / MANIFEST_NAME).exists() and (candidate / kind).is_dir():
        candidate = candidate / kind
    if (candidate / MANIFEST_NAME).is_file():
        return candidate
    latest = candidate / LATEST_NAME
    if latest.is_file():
        version_dir = candidate / latest.read_text().strip()
        if (version_dir / MANIFEST_NAME).is_file():
            return version_dir
        raise ArtifactError(f"{latest} names {version_dir.name!r}, which has no {MANIFEST_NAME}")
    raise ArtifactError(
        f"{candidate} is not an artifact: no {MANIFEST_NAME} and no {LATEST_NAME} file "
        f"(did you run the job that writes it?)"
    )


def read_manifest(artifact_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load ``manifest.json`` of a version directory."""
    manifest_path = Path(artifact_dir) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path} does not exist")
    return json.loads(manifest_path.read_text())


def input_record(artifact_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What a downstream manifest stores about an input artifact: path, kind, version, content hash."""
    manifest = read_manifest(artifact_dir)
    return {
        "path": str(artifact_dir),
        "kind": manifest["kind"],
        "version": manifest["version"],
        "content_sha256": manifest["content_sha256"],
    }


def verify_artifact(artifact_dir: str | os.PathLike[str]) -> list[str]:
    """Re-hash every file and list the differences from the manifest (empty list: intact)."""
    directory = Path(artifact_dir)
    manifest = read_manifest(directory)
    files, bulk, content_sha = _hash_tree(directory, (name.rstrip("/") for name in manifest["bulk_files"]))
    problems = [
        f"{name}: expected {expected['sha256'][:12]}, found {files.get(name, {}).get('sha256', 'missing')[:12]}"
        for name, expected in manifest["files"].items()
        if files.get(name, {}).get("sha256") != expected["sha256"]
    ]
    problems += [f"{name}: not in manifest" for name in files if name not in manifest["files"]]
    problems += [
        f"{name}: bulk directory differs"
        for name, expected in manifest["bulk_files"].items()
        if bulk.get(name, {}).get("sha256") != expected.get("sha256")
    ]
    if not problems and content_sha != manifest["content_sha256"]:
        problems.append("content_sha256 differs")
    return problems
