"""``search serve``: the engine over HTTP, as a JSON API and a search page.

The index is opened once per process and the model loaded once; requests run on a thread pool
and share both (ONNX Runtime, faiss and numpy release the GIL, so queries do not queue behind one
another on the model). Once a second, at most, a request checks whether ``search index`` has
committed a newer generation; if so the index is reopened in the background with the same model
and swapped in, and the old one is closed when its last request has finished.

::

    from search.serve import create_app
    app = create_app("indexes/default")      # any ASGI server: uvicorn.run(app)
"""

from __future__ import annotations

import inspect
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from .api_models import ERRORS, FILTER_PARAMS, DocumentOut, ErrorOut, HealthOut, SearchOut
from .errors import DocumentNotFoundError, QueryError, SearchError, ServeError
from .filters import Filters, parse_facets
from .holder import IndexHolder, Snapshot
from .index import DEFAULT_INDEX
from .params import SearchParams, param_specs
from .searcher import Page
from .types import Document, Result, results_payload

log = logging.getLogger("search.serve")

MAX_QUERY = 1000  # characters of q the API accepts (the library's own limit is 10,000)
STATIC = resources.files("search") / "static"
# the page loads nothing from elsewhere; the browser is told so
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _document(snap: Snapshot, doc_id: str) -> Document:
    num = snap.index.document_num(doc_id)
    if num is None:
        raise DocumentNotFoundError(f"no document {doc_id!r} in the index")
    return snap.index.document(num)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return "; ".join(parts)


QueryText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_QUERY,
        description='Words, a question, or query syntax ("phrase", AND/OR/NOT, field:term, term~).',
    ),
]


def search_params_dependency() -> Callable[..., SearchParams]:
    """A FastAPI dependency whose query parameters are generated from :class:`SearchParams`: the
    same names, defaults, bounds (``api_hi`` where the API allows less than the library) and help."""
    parameters = []
    for spec in param_specs():
        hi = spec.api_hi if spec.api_hi is not None else spec.hi
        query = Query(ge=spec.lo, le=hi, description=spec.help)
        kind = spec.value_type(hi=hi)
        parameters.append(
            inspect.Parameter(
                spec.name, inspect.Parameter.KEYWORD_ONLY, default=spec.default, annotation=Annotated[kind, query]
            )
        )

    for name, kind, description in FILTER_PARAMS:
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[kind, Query(description=description)],
            )
        )

    def params(**values: Any) -> SearchParams:
        where, path, after, before, facets = (values.pop(name) for name, _, _ in FILTER_PARAMS)
        filters = Filters.parse(where or (), path or (), after, before)
        return SearchParams(**values, filters=filters, facets=parse_facets(facets))

    params.__signature__ = inspect.Signature(parameters, return_annotation=SearchParams)  # type: ignore[attr-defined]  # FastAPI reads it
    return params


SearchOptions = Annotated[SearchParams, Depends(search_params_dependency())]


def create_app(index: str | Path | IndexHolder = DEFAULT_INDEX, model: str | None = None) -> FastAPI:
    """The ASGI application serving ``index``: a folder (opened now, closed when the app shuts
    down) or an :class:`IndexHolder` the caller opened and closes."""
    owned = not isinstance(index, IndexHolder)
    holder = IndexHolder(index, model=model) if not isinstance(index, IndexHolder) else index

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            holder.close()

    app = FastAPIOffline(
        title="hybrid-search",
        summary="Hybrid keyword + semantic search over German and English documents, with evidence.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.holder = holder
    _error_handlers(app)
    _search_routes(app, holder)
    _document_routes(app, holder)
    _index_routes(app, holder)
    _page(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return _error(422, _validation_message(list(errors)), detail=jsonable_encoder(errors))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # a 405's Allow
        return response

    @app.exception_handler(SearchError)
    async def _engine(request: Request, exc: SearchError) -> JSONResponse:
        # a query or option the engine refuses is the client's; a damaged index is ours
        if isinstance(exc, DocumentNotFoundError):
            return _error(404, str(exc))
        return _error(400 if isinstance(exc, QueryError) or exc.exit_code == 1 else 503, str(exc))


def _passages_in(doc: Document, results: list[Result]) -> list[dict[str, Any]]:
    """The results lying in ``doc``, every offset turned into one into its text."""
    passages = []
    for r in results:
        if r.doc != doc.id:
            continue
        item: dict[str, Any] = r.to_json()
        del item["doc"], item["title"], item["passage"]
        item["highlights"] = [[r.start + s, r.start + e] for s, e in r.highlights]
        sentence = r.evidence.sentence
        evidence = dict(item["evidence"])
        evidence["sentence"] = [r.start + sentence[0], r.start + sentence[1]] if sentence else None
        item["evidence"] = evidence
        passages.append(item)
    return passages


def _run_page(holder: IndexHolder, snap: Snapshot, q: str, params: SearchParams) -> Page:
    holder.count_query()
    return snap.index.page(q, params)


def _search_routes(app: FastAPI, holder: IndexHolder) -> None:
    @app.get("/api/search", summary="Rank passages", tags=["search"], response_model=SearchOut, responses=ERRORS)
    def api_search(q: QueryText, options: SearchOptions) -> JSONResponse:
        """The same JSON as `search query --json`: `{"query", "mode", "results": [...]}` (and in hybrid
        mode `feedback_docs`); offsets (`highlights`, `evidence.sentence`) are characters (code points)
        into `passage`. `offset` pages: ranks offset+1 to offset+k."""
        t0 = time.perf_counter()
        with holder.use() as snap:
            response = _run_page(holder, snap, q, options)
            generation = snap.index.manifest.generation
        headers = {
            "X-Index-Generation": generation,
            "Server-Timing": f"search;dur={(time.perf_counter() - t0) * 1000:.1f}",
        }
        # the payload is plain JSON types already: skip FastAPI's re-encoding and validation
        payload = results_payload(
            q, options.mode.value, response.results, response.feedback_docs, response.facets, response.shards
        )
        return JSONResponse(payload, headers=headers)


def _document_routes(app: FastAPI, holder: IndexHolder) -> None:
    not_found = {**ERRORS, 404: {"model": ErrorOut, "description": "no such document"}}

    def route(path: str, summary: str, model: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return app.get(path, summary=summary, tags=["search"], response_model=model, responses=not_found)

    # Each document route also takes the id as ?doc_id=, which reaches every id: in the path, an id
    # ending in "/similar" is taken by the similar route, and a browser drops a ".." segment.
    @route("/api/similar", "Documents like this one (?doc_id=)", SearchOut)
    @route("/api/documents/{doc_id:path}/similar", "Documents like this one", SearchOut)
    def api_similar(
        doc_id: str,
        k: Annotated[int, Query(ge=1, le=1000, description="Number of documents to return.")] = 10,
        window: Annotated[
            int | None, Query(ge=0, le=10, description="Neighbouring sentences shown (default: the index's).")
        ] = None,
    ) -> JSONResponse:
        """The documents nearest to this document's vector, itself excluded, in the JSON of
        `/api/search` (`mode` is `"similar"`, `query` the id): each result is the other document's
        sentence closest to one of this one's, `evidence.source` is that sentence of this document
        (offsets into its text) and `evidence.similarity` the two sentences' cosine."""
        with holder.use() as snap:
            results = snap.index.similar(doc_id, k, window)  # an unknown id: 404, from the handler
            shards = snap.index.shard_counts()
        return JSONResponse(results_payload(doc_id, "similar", results, shards=shards))

    @route("/api/document", "One document (?doc_id=)", DocumentOut)
    @route("/api/documents/{doc_id:path}", "One document, with a query's passages marked", DocumentOut)
    def api_document(
        doc_id: str,
        options: SearchOptions,
        q: Annotated[
            str | None,
            Query(max_length=MAX_QUERY, description="Mark the passages this query finds in the document."),
        ] = None,
    ) -> JSONResponse:
        """The whole text of a document. With `q` (and the same options as `/api/search`), the
        passages of that result list that lie in this document are listed with their rank, and
        every offset is into `text`."""
        with holder.use() as snap:
            doc = _document(snap, doc_id)
            results = _run_page(holder, snap, q, options).results if q else []
        body: dict[str, Any] = {"id": doc.id, "title": doc.title, "lang": doc.lang, "text": doc.text, "query": q}
        body.update(meta=doc.metadata(), page_starts=list(doc.pages))
        return JSONResponse({**body, "mode": options.mode.value, "passages": _passages_in(doc, results)})


def _index_routes(app: FastAPI, holder: IndexHolder) -> None:
    @app.get("/api/info", summary="What is in the index", tags=["index"])
    def api_info() -> dict[str, Any]:
        """The index's manifest (documents, sentences, model, analyzer) with sizes on disk, as
        `search info --json` prints it, and the server's own figures."""
        with holder.use() as snap:
            report = snap.index.info()
        report["server"] = {"started": holder.started, "queries": holder.queries, "reloads": holder.reloads}
        return report

    @app.head("/healthz", include_in_schema=False)  # what load balancers send
    @app.get("/healthz", summary="Liveness", tags=["index"], response_model=HealthOut)
    def healthz() -> dict[str, Any]:
        with holder.use() as snap:
            ix = snap.index
            return {
                "status": "ok",
                "generation": ix.manifest.generation,
                "documents": len(ix.documents),
                "sentences": len(ix.chunks),
                "model": ix.manifest.model.name,
                "model_loaded": ix.model_loaded,
            }


def _page(app: FastAPI) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(Path(str(STATIC / "index.html")), headers={"Content-Security-Policy": PAGE_CSP})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.middleware("http")
    async def _page_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if request.url.path.startswith("/static/"):
            response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error (the address is taken, the host unknown)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY then
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    folder: str | Path = DEFAULT_INDEX,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    log_level: str = "info",
    ready: Callable[[str, IndexHolder], None] | None = None,
) -> None:
    """Open the index, load the model, listen, and serve until interrupted.

    ``ready`` is called with the page's URL and the open index once everything is loaded.
    """
    import uvicorn

    sock = listen(host, port)
    holder = None
    try:
        holder = IndexHolder(folder, model=model)
        app = create_app(holder)
        config = uvicorn.Config(app, log_level=log_level, access_log=log_level in ("debug", "trace"))
        bound_port = sock.getsockname()[1]
        if ready:
            ready(f"http://{f'[{host}]' if ':' in host else host}:{bound_port}/", holder)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if holder is not None:
            holder.close()
