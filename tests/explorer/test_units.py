"""The explorer's pure parts: file resolution, report rendering, upload decoding (fast, no stack)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serendip.core.frames import encode_video
from serendip.explorer.files import resolve_inside
from serendip.explorer.reports import figures_named_in, latest_reports, render_markdown
from serendip.explorer.uploads import UploadError, content_from_upload


@pytest.fixture
def served(tmp_path: Path) -> Path:
    base = tmp_path / "artifacts"
    (base / "world" / "v1" / "thumbnails").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(base / "world" / "v1" / "thumbnails" / "a.jpg")
    (base / "world" / "v1" / "items.parquet").write_bytes(b"PAR1")
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    (base / "escape.png").symlink_to(tmp_path / "secret.png")
    (base / "escape_dir").symlink_to(tmp_path)
    return base


def test_resolve_inside_serves_images_under_the_base(served: Path) -> None:
    assert resolve_inside(served, "world/v1/thumbnails/a.jpg") == (served / "world/v1/thumbnails/a.jpg").resolve()


@pytest.mark.parametrize(
    "relative",
    [
        "../secret.png",
        "world/../../secret.png",
        "/etc/passwd",
        str(Path("/") / "tmp"),
        "escape.png",
        "escape_dir/secret.png",
        "world/v1/items.parquet",
        "world/v1/thumbnails/missing.jpg",
        "world\\..\\..\\secret.png",
        "world/v1/thumbnails/a.jpg\x00.png",
        "",
    ],
)
def test_resolve_inside_refuses_everything_else(served: Path, relative: str) -> None:
    assert resolve_inside(served, relative) is None


def test_markdown_is_escaped_and_tables_render() -> None:
    html = str(render_markdown("# Title <script>\n\n| a | b |\n|---|---|\n| `x` | **y** |\n\n- one\n- two\n"))
    assert "<h2>Title &lt;script&gt;</h2>" in html
    assert "<th>a</th>" in html and "<td><code>x</code></td>" in html and "<strong>y</strong>" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert "<script>" not in html


def test_latest_reports_and_figures_named(tmp_path: Path) -> None:
    for stamp in ("20260101T000000", "20260202T000000"):
        (tmp_path / "eval" / stamp).mkdir(parents=True)
        Image.new("RGB", (2, 2)).save(tmp_path / "eval" / stamp / "fig.png")
    (tmp_path / "loadtest" / "20260101T000000").mkdir(parents=True)
    reports = latest_reports(tmp_path)
    assert [(report.kind, report.stamp) for report in reports] == [("eval", "20260202T000000")]
    assert reports[0].figures == ["eval/20260202T000000/fig.png"]
    text = "see `reports/eval/20260101T000000/fig.png` and `reports/eval/none.png`"
    assert figures_named_in(text, tmp_path) == ["eval/20260101T000000/fig.png"]


def test_mp4_upload_becomes_jpeg_frames(tmp_path: Path) -> None:
    frames = np.zeros((12, 32, 32, 3), dtype=np.uint8)
    frames[:, :, :16] = (200, 30, 30)
    encode_video(frames, tmp_path / "clip.mp4", fps=8)
    content = content_from_upload((tmp_path / "clip.mp4").read_bytes(), "a clip", num_frames=4)
    assert len(content.frames_jpeg) == 4
    assert Image.open(io.BytesIO(content.thumbnail_jpeg)).size == (32, 32)
    assert (
        content.item_id.startswith("upload-")
        and content.item_id == content_from_upload((tmp_path / "clip.mp4").read_bytes(), "a clip", num_frames=4).item_id
    )


def test_non_video_uploads_go_to_the_planner_as_they_are() -> None:
    content = content_from_upload(b"not a jpeg", "x")
    assert content.thumbnail_jpeg == b"not a jpeg" and content.frames_jpeg == (b"not a jpeg",)


def test_empty_or_broken_video_uploads_are_refused() -> None:
    with pytest.raises(UploadError, match="empty"):
        content_from_upload(b"", "x")
    with pytest.raises(UploadError, match="not a decodable video"):
        content_from_upload(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "x")
