"""The newest evaluation and benchmark reports under the reports directory, and BENCHMARKS.md, for the page.

Reports are directories ``<reports>/<kind>/<UTC stamp>/`` (``make eval`` writes ``eval/``, the load tests
``loadtest/``, the replay ``replay/``); the newest of each kind is shown with its PNG figures and its
``table.md``. Markdown is rendered by :func:`render_markdown`, which knows what these reports use (headings,
tables, lists, paragraphs, inline code and bold) and escapes everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from serendip.explorer.files import IMAGE_TYPES, resolve_inside

REPORT_ORDER = ("eval", "loadtest", "replay")
"""Kinds shown first, in this order; any other kind follows alphabetically."""
TABLE_FILE = "table.md"
BULLET = re.compile(r"^\s*[-*] ")


@dataclass(frozen=True)
class Report:
    """The newest report of one kind."""

    kind: str
    stamp: str
    figures: list[str]
    """Paths relative to the reports directory."""
    table_html: Markup | None


def latest_reports(reports_dir: Path) -> list[Report]:
    """The newest report directory of each kind that has figures or a table."""
    if not reports_dir.is_dir():
        return []
    kinds = sorted((p for p in reports_dir.iterdir() if p.is_dir()), key=lambda p: _kind_rank(p.name))
    reports = []
    for kind_dir in kinds:
        stamps = sorted((p for p in kind_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
        for stamp_dir in stamps:
            figures = sorted(
                p.relative_to(reports_dir).as_posix() for p in stamp_dir.iterdir() if p.suffix.lower() in IMAGE_TYPES
            )
            table = stamp_dir / TABLE_FILE
            table_html = render_markdown(table.read_text()) if table.is_file() else None
            if figures or table_html is not None:
                reports.append(Report(kind_dir.name, stamp_dir.name, figures, table_html))
                break
    return reports


def _kind_rank(kind: str) -> tuple[int, str]:
    return (REPORT_ORDER.index(kind) if kind in REPORT_ORDER else len(REPORT_ORDER), kind)


def figures_named_in(markdown: str, reports_dir: Path) -> list[str]:
    """Image paths a markdown text names that lie in the reports directory, relative to it (a leading
    ``reports/`` or the directory's own name is taken as the directory itself)."""
    found: list[str] = []
    for match in re.finditer(r"[\w./-]+\.(?:png|jpe?g|svg)", markdown):
        path = match.group(0)
        candidates = [path] + [
            path.split(f"{name}/", 1)[1] for name in ("reports", reports_dir.name) if f"{name}/" in path
        ]
        for relative in candidates:
            if resolve_inside(reports_dir, relative) is not None and relative not in found:
                found.append(relative)
                break
    return found


def render_markdown(text: str) -> Markup:
    """HTML for the markdown subset the reports use; every text run is escaped."""
    html: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if not line.strip():
            index += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 6)
            html.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
            index += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while index < len(lines) and lines[index].lstrip().startswith("|"):
                rows.append(lines[index].strip())
                index += 1
            html.append(_table(rows))
        elif re.match(r"\s*[-*] ", line):
            items = []
            while index < len(lines) and re.match(r"\s*[-*] ", lines[index]):
                items.append("<li>" + _inline(BULLET.sub("", lines[index])) + "</li>")
                index += 1
            html.append("<ul>" + "".join(items) + "</ul>")
        else:
            paragraph = []
            while index < len(lines) and lines[index].strip() and not _starts_block(lines[index]):
                paragraph.append(lines[index].strip())
                index += 1
            html.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return Markup("\n".join(html))


def _starts_block(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith(("#", "|")) or bool(re.match(r"[-*] ", stripped))


def _table(rows: list[str]) -> str:
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    body = [row for row in cells if not all(re.fullmatch(r":?-{2,}:?", cell) for cell in row if cell)]
    if not body:
        return ""
    head, rest = body[0], body[1:]
    out = ["<table class='md'><thead><tr>", *(f"<th>{_inline(cell)}</th>" for cell in head), "</tr></thead><tbody>"]
    for row in rest:
        out += ["<tr>", *(f"<td>{_inline(cell)}</td>" for cell in row), "</tr>"]
    out.append("</tbody></table>")
    return "".join(out)


def _inline(text: str) -> str:
    escaped = str(escape(text))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
