"""Versioned artifact directories: atomic publication, LATEST, manifests with content hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.artifacts.store import ArtifactWriter, read_manifest, resolve_artifact, verify_artifact
from serendip.core.errors import ArtifactError


def test_published_version_has_manifest_and_latest(tmp_path: Path) -> None:
    with ArtifactWriter(tmp_path, "demo", {"alpha": 1}, inputs={"source": "unit test"}) as writer:
        (writer.dir / "table.txt").write_text("hello\n")
        (writer.dir / "videos").mkdir()
        (writer.dir / "videos" / "v.mp4").write_bytes(b"\x00\x01")
        writer.counts["rows"] = 1
        assert not writer.final_dir.exists()  # nothing visible before the rename
    manifest = read_manifest(writer.final_dir)
    assert manifest["parameters"] == {"alpha": 1} and manifest["counts"] == {"rows": 1}
    assert manifest["inputs"] == {"source": "unit test"}
    assert set(manifest["files"]) == {"table.txt"}
    assert manifest["bulk_files"]["videos/"]["count"] == 1
    assert (tmp_path / "demo" / "LATEST").read_text().strip() == writer.version
    assert resolve_artifact(tmp_path / "demo") == writer.final_dir
    assert resolve_artifact(tmp_path, "demo") == writer.final_dir
    assert verify_artifact(writer.final_dir) == []
    (writer.final_dir / "videos" / "v.mp4").write_bytes(b"tampered")
    assert verify_artifact(writer.final_dir) == ["videos/: bulk directory differs"]


def test_failed_job_publishes_nothing(tmp_path: Path) -> None:
    with ArtifactWriter(tmp_path, "demo", {"alpha": 1}) as first:
        (first.dir / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), ArtifactWriter(tmp_path, "demo", {"alpha": 2}) as second:
        (second.dir / "a.txt").write_text("2")
        raise RuntimeError("job died")
    assert {path.name for path in (tmp_path / "demo").iterdir()} == {"LATEST", first.version}
    assert resolve_artifact(tmp_path / "demo") == first.final_dir


def test_missing_artifact_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="did you run the job"):
        resolve_artifact(tmp_path / "world")
