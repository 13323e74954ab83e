"""The explorer's pages: catalogue, context item (plan + recommendations), upload, tree, reports, and images.

Pages are rendered on the server (Starlette + Jinja2, no script needed). Every service answer comes from a gRPC
call; a failed call is shown as its status code and the service's message. Images come from the artifact root
(``/media/<path>``) or the reports directory (``/reports/file/<path>``) through :func:`resolve_inside`, so no
request path reaches a file outside them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from serendip.core.cluster_tree import DEFAULT_PLANNING_LEVEL
from serendip.explorer.catalogue import Catalogue, ItemCard
from serendip.explorer.client import (
    CallError,
    ServiceClients,
    UploadedContent,
    history_proto,
    plan_request,
    recommend_request,
)
from serendip.explorer.files import media_type, resolve_inside
from serendip.explorer.reports import figures_named_in, latest_reports, render_markdown
from serendip.explorer.uploads import MAX_UPLOAD_BYTES, UploadError, content_from_upload
from serendip.v1 import planner_pb2, retriever_pb2

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
PAGE_SIZE = 48
MEMBER_THUMBNAILS = 4
DEFAULT_NUM_ITEMS = 12
MAX_HISTORY = 50


@dataclass(frozen=True)
class ExplorerSettings:
    """Where the explorer reads from and which services it calls."""

    artifacts: Path
    planner_address: str
    retriever_address: str
    reports: Path = Path("reports")
    benchmarks: Path = Path("BENCHMARKS.md")
    deadline_s: float = 5.0


@dataclass
class PlanView:
    """One Plan and one Recommend answer (or their errors), ready for the template."""

    plan: dict[str, Any] | None = None
    plan_error: CallError | None = None
    recommend: dict[str, Any] | None = None
    recommend_error: CallError | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def source_name(value: int, enum: Any, prefix: str) -> str:
    """``PLAN_SOURCE_CACHE`` -> ``CACHE``."""
    return str(enum.Name(value)).removeprefix(prefix) if value in enum.values() else f"UNKNOWN({value})"


def create_app(settings: ExplorerSettings, catalogue: Catalogue | None = None) -> Starlette:
    """The explorer as an ASGI app; the catalogue is read now, the gRPC channels open with the app."""
    catalogue = catalogue or Catalogue(settings.artifacts)
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True))
    state: dict[str, ServiceClients] = {}

    def item_url(item_id: str, history: Sequence[str] = ()) -> str:
        query = urlencode({"history": ",".join(history)}) if history else ""
        return f"/item/{item_id}" + (f"?{query}" if query else "")

    templates.env.globals.update(item_url=item_url, planning_level=DEFAULT_PLANNING_LEVEL)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state["clients"] = ServiceClients(settings.planner_address, settings.retriever_address, settings.deadline_s)
        try:
            yield
        finally:
            await state.pop("clients").close()

    def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
        context = {"settings": settings, "notes": catalogue.notes, **context}
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    # --- catalogue ---------------------------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        query = request.query_params.get("q", "")
        cluster_id = request.query_params.get("cluster", "")
        page = max(_int(request.query_params.get("page"), 1), 1)
        item_ids, total = catalogue.search(query, cluster_id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        health = await state["clients"].health()
        cluster_options = [
            (node_id, catalogue.tree.node(node_id).description, level)
            for level in range(1, catalogue.tree.num_levels)
            for node_id in catalogue.tree.nodes_at(level)
        ]
        return render(
            request,
            "catalogue.html",
            {
                "query": query,
                "cluster_id": cluster_id,
                "cluster_path": catalogue.path(cluster_id) if cluster_id else [],
                "cluster_options": sorted(cluster_options),
                "cards": [catalogue.card(item_id) for item_id in item_ids],
                "paths": {item_id: catalogue.item_path(item_id) for item_id in item_ids},
                "total": total,
                "page": page,
                "pages": max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
                "page_url": lambda number: "/?" + urlencode({"q": query, "cluster": cluster_id, "page": number}),
                "health": health,
                "frame_store": catalogue.frame_store.name if catalogue.frame_store else None,
            },
        )

    # --- context item ----------------------------------------------------------------------------------------
    async def item(request: Request) -> Response:
        item_id = request.path_params["item_id"]
        history = _history(request.query_params.get("history", ""))
        num_clusters = min(max(_int(request.query_params.get("clusters"), 3), 1), 50)
        num_items = min(max(_int(request.query_params.get("items"), DEFAULT_NUM_ITEMS), 1), 100)
        view = await plan_view(item_id, history, num_clusters, num_items, None)
        context = {
            "context": catalogue.card(item_id),
            "context_path": catalogue.item_path(item_id),
            "frames_source": catalogue.frames_source(item_id),
            "history": history,
            "history_cards": [catalogue.card(item_id) for item_id in history],
            "view": view,
            "num_clusters": num_clusters,
            "num_items": num_items,
            "upload": None,
        }
        return render(request, "item.html", context, status_code=200 if item_id in catalogue else 404)

    async def plan_view(
        item_id: str,
        history: list[str],
        num_clusters: int,
        num_items: int,
        content: UploadedContent | None,
    ) -> PlanView:
        clients = state["clients"]
        view = PlanView()
        started = time.perf_counter()

        async def timed(name: str, call: Any) -> Any:
            begin = time.perf_counter()
            try:
                return await call
            finally:
                view.timings_ms[name] = (time.perf_counter() - begin) * 1000

        plan, recommend = await asyncio.gather(
            timed("Plan", clients.plan(plan_request(item_id, history, num_clusters, content))),
            timed(
                "Recommend",
                clients.recommend(recommend_request(item_id, history, num_items, num_clusters, content)),
            ),
            return_exceptions=True,
        )
        view.timings_ms["calls"] = (time.perf_counter() - started) * 1000
        for answer in (plan, recommend):
            if isinstance(answer, BaseException) and not isinstance(answer, CallError):
                raise answer
        if isinstance(plan, CallError):
            view.plan_error = plan
        else:
            view.plan = describe_plan(plan)
        if isinstance(recommend, CallError):
            view.recommend_error = recommend
        else:
            view.recommend = describe_recommend(recommend)
        return view

    def describe_plan(plan: planner_pb2.PlanResponse) -> dict[str, Any]:
        reasonings = [planned.reasoning for planned in plan.clusters if planned.reasoning]
        clusters = []
        for planned in plan.clusters:
            cluster = planned.cluster
            clusters.append(
                {
                    "cluster_id": cluster.cluster_id,
                    "level": cluster.level,
                    "description": cluster.description,
                    "score": planned.score,
                    "reasoning": planned.reasoning,
                    "path": catalogue.path(cluster.cluster_id),
                    "stats": catalogue.stats(cluster.cluster_id),
                    "members": [
                        catalogue.card(i) for i in catalogue.most_watched(cluster.cluster_id, MEMBER_THUMBNAILS)
                    ],
                }
            )
        context_cluster = plan.context_cluster
        return {
            "source": source_name(plan.source, planner_pb2.PlanSource, "PLAN_SOURCE_"),
            "plan_version": plan.plan_version,
            "context_cluster": context_cluster if context_cluster.cluster_id else None,
            "context_cluster_path": catalogue.path(context_cluster.cluster_id) if context_cluster.cluster_id else [],
            "clusters": clusters,
            "reasoning": reasonings[0] if reasonings and len(set(reasonings)) == 1 else None,
        }

    def describe_recommend(answer: planner_pb2.RecommendResponse) -> dict[str, Any]:
        items = [
            {
                "card": catalogue.card(recommended.item_id),
                "score": recommended.score,
                "cluster_path": list(recommended.cluster_path),
                "reason": recommended.reason,
            }
            for recommended in answer.items
        ]
        return {
            "recommended": items,
            "retrieval_source": source_name(answer.retrieval_source, planner_pb2.RetrievalSource, "RETRIEVAL_SOURCE_"),
            "plan_source": source_name(answer.plan.source, planner_pb2.PlanSource, "PLAN_SOURCE_"),
            "cluster_ids": [planned.cluster.cluster_id for planned in answer.plan.clusters],
        }

    # --- upload ------------------------------------------------------------------------------------------------
    async def upload(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "upload.html", {"error": None})
        async with request.form(max_files=1, max_fields=8) as form:
            file, title = form.get("file"), str(form.get("title") or "")
            history = _history(str(form.get("history") or ""))
            if not isinstance(file, UploadFile):
                return render(request, "upload.html", {"error": "upload: choose an mp4 or JPEG file"}, 400)
            data = await file.read(MAX_UPLOAD_BYTES + 1)
            filename = file.filename or ""
        try:
            content = await asyncio.to_thread(content_from_upload, data, title, catalogue.num_frames)
        except UploadError as error:
            return render(request, "upload.html", {"error": str(error)}, 400)
        view = await plan_view(content.item_id, history, 3, DEFAULT_NUM_ITEMS, content)
        context = {
            "context": ItemCard(content.item_id, title, 0, _data_url(content.thumbnail_jpeg), "", known=False),
            "context_path": [],
            "frames_source": f"{len(content.frames_jpeg)} frame(s) from {filename or 'the upload'}",
            "history": history,
            "history_cards": [catalogue.card(item_id) for item_id in history],
            "view": view,
            "num_clusters": 3,
            "num_items": DEFAULT_NUM_ITEMS,
            "upload": {"filename": filename, "frames": [_data_url(frame) for frame in content.frames_jpeg]},
        }
        return render(request, "item.html", context)

    # --- tree --------------------------------------------------------------------------------------------------
    async def tree(request: Request) -> Response:
        levels = [
            {"level": level, "count": len(catalogue.tree.nodes_at(level))}
            for level in range(1, catalogue.tree.num_levels + 1)
        ]
        top = [
            {
                "node": catalogue.tree.node(node_id),
                "stats": catalogue.stats(node_id),
                "children": [(catalogue.tree.node(c), catalogue.stats(c)) for c in catalogue.tree.children(node_id)],
            }
            for node_id in catalogue.tree.children(None)
        ]
        return render(request, "tree.html", {"levels": levels, "top": top, "tree_dir": catalogue.tree_dir})

    async def tree_node(request: Request) -> Response:
        node_id = request.path_params["node_id"]
        path = catalogue.path(node_id)
        if not path:
            raise HTTPException(404, f"no cluster {node_id!r} in the served tree")
        node = path[-1]
        siblings = catalogue.tree.siblings(node_id, 1) if node.level > 1 else []
        retrieved, retrieve_error = None, None
        if node.level == DEFAULT_PLANNING_LEVEL:
            request_proto = retriever_pb2.RetrieveRequest(history=history_proto([]), cluster_ids=[node_id], k=8)
            try:
                retrieved = await state["clients"].retrieve(request_proto)
            except CallError as error:
                retrieve_error = error
        context = {
            "node": node,
            "path": path,
            "stats": catalogue.stats(node_id),
            "children": [(catalogue.tree.node(c), catalogue.stats(c)) for c in catalogue.tree.children(node_id)],
            "siblings": [(catalogue.tree.node(s), catalogue.stats(s)) for s in siblings],
            "members": [catalogue.card(i) for i in catalogue.most_watched(node_id, 12)],
            "retrieved": [(catalogue.card(i.item_id), i.score) for i in retrieved.items] if retrieved else None,
            "retrieve_cold_start": bool(retrieved and retrieved.cold_start),
            "retrieve_error": retrieve_error,
        }
        return render(request, "node.html", context)

    # --- reports -----------------------------------------------------------------------------------------------
    async def reports(request: Request) -> Response:
        benchmarks_html, benchmark_figures = None, []
        if settings.benchmarks.is_file():
            text = settings.benchmarks.read_text()
            benchmarks_html = render_markdown(text)
            benchmark_figures = figures_named_in(text, settings.reports)
        newest = latest_reports(settings.reports)
        shown = {figure for report in newest for figure in report.figures}
        context = {
            "reports": newest,
            "benchmarks_html": benchmarks_html,
            "benchmark_figures": [figure for figure in benchmark_figures if figure not in shown],
        }
        return render(request, "reports.html", context)

    # --- images ------------------------------------------------------------------------------------------------
    def media(request: Request) -> Response:
        return _file_under(settings.artifacts, request.path_params["path"])

    def report_file(request: Request) -> Response:
        return _file_under(settings.reports, request.path_params["path"])

    def frames(request: Request) -> Response:
        strip = catalogue.frames_png(request.path_params["item_id"])
        if strip is None:
            raise HTTPException(404, "no frames for this item")
        return Response(strip, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    def thumbnail(request: Request) -> Response:
        png = catalogue.thumbnail_png(request.path_params["item_id"])
        if png is None:
            raise HTTPException(404, "no thumbnail for this item")
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    # --- errors ------------------------------------------------------------------------------------------------
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return render(request, "error.html", {"status": error.status_code, "message": error.detail}, error.status_code)

    async def unexpected_error(request: Request, error: Exception) -> Response:
        error_id = uuid.uuid4().hex[:12]
        logger.error("error %s on %s", error_id, request.url.path, exc_info=error)
        message = f"the explorer failed on this page (error id {error_id}; see its log)"
        return HTMLResponse(f"<h1>500</h1><p>{message}</p>", status_code=500)

    routes = [
        Route("/", index),
        Route("/item/{item_id}", item),
        Route("/upload", upload, methods=["GET", "POST"]),
        Route("/tree", tree),
        Route("/tree/{node_id}", tree_node),
        Route("/reports", reports),
        Route("/media/{path:path}", media),
        Route("/reports/file/{path:path}", report_file),
        Route("/frames/{item_id}.png", frames),
        Route("/thumb/{item_id}.png", thumbnail),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
    )


def _file_under(base: Path, relative: str) -> Response:
    path = resolve_inside(base, relative)
    if path is None:
        raise HTTPException(404, "no such image")
    return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "max-age=3600"})


def _history(text: str) -> list[str]:
    return [item_id for item_id in (part.strip() for part in text.split(",")) if item_id][:MAX_HISTORY]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _data_url(jpeg: bytes) -> str:
    """A data: URL of an uploaded image, or '' when it is no decodable image (then nothing is shown)."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
