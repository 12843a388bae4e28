"""`tokenmill rank serve`: the annotation web page and its JSON API (FastAPI + uvicorn).

    GET  /                          the page (pipelines.rank.page)
    GET  /api/next?annotator=NAME   the next set NAME has neither ranked nor skipped ({"set": null} at the end)
    GET  /api/progress?annotator=   counts, annotators and their agreement
    POST /api/rank  {set_id, annotator, order: [response ids, best first]}
    POST /api/skip  {set_id, annotator}

Errors are JSON ``{"detail": ...}`` with 400 (incomplete/invalid ranking), 404 (unknown set) or
409 (already ranked), and change nothing. Each ranking is committed before the answer, so the
server can be stopped at any time.
"""

from __future__ import annotations

import socket
import sys

from pydantic import BaseModel

from pipelines.rank.db import RankError, RankStore
from pipelines.rank.export import agreement


class RankIn(BaseModel):
    set_id: str
    annotator: str
    order: list


class SkipIn(BaseModel):
    set_id: str
    annotator: str


def make_app(store: RankStore):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from pipelines.rank.page import PAGE

    app = FastAPI(title="tokenmill ranking", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RankError)
    async def rank_error(_request: Request, exc: RankError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError):
        where = "; ".join(
            f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"detail": f"bad request: {where}"}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get("/api/next")
    def next_set(annotator: str) -> dict:
        return {"set": store.next_for(annotator)}

    @app.get("/api/progress")
    def progress(annotator: str = "") -> dict:
        return {**store.progress(annotator or None), "agreement": agreement(store.rankings())}

    @app.post("/api/rank")
    def rank(body: RankIn) -> dict:
        return {"ranking_id": store.submit(body.set_id, body.annotator, body.order)}

    @app.post("/api/skip")
    def skip(body: SkipIn) -> dict:
        store.skip(body.set_id, body.annotator)
        return {"skipped": body.set_id}

    return app


def serve(store: RankStore, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until interrupted. ``port=0`` asks the OS for a free port; the URL is printed first."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    print(f"ranking page: http://{host}:{bound}/ (database {store.url})", flush=True)
    print(f"serving on http://{host}:{bound}", file=sys.stderr, flush=True)
    config = uvicorn.Config(make_app(store), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
