"""HTTP intake: ``POST /v1/predictions``, ``POST /v1/labels`` and ``GET /healthz``
(503 when the database is unreachable or refuses writes: `monitor.store.heartbeat`).

`create_app` builds the FastAPI app the daemon serves (it adds its own routes, such
as /metrics and /slack/events, to the same app); `monitor serve` runs it alone. When
MONITOR_INGEST_TOKEN is set, /v1/* requires ``Authorization: Bearer <token>``;
without a token the app refuses to listen beyond localhost.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from monitor import __version__, metrics
from monitor.config import CONFIG_ENV, Settings
from monitor.errors import ConfigError
from monitor.intake.ingest import group_commit, ingest_body, ingest_labels, parse_body
from monitor.intake.timebounds import TimePolicy
from monitor.store.heartbeat import WriteProbe

log = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
HealthFields = Callable[[], Mapping[str, Any]]


class HTTPProblem(Exception):
    """An HTTP error answered as ``{"error": detail}`` with its status."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def check_bind(settings: Settings, host: str | None = None) -> None:
    """Raise ConfigError when the server would listen beyond localhost without a token."""
    host = host or settings.server.host
    if host in LOCAL_HOSTS or host.startswith("127.") or settings.secrets.ingest_token:
        return
    where = settings.source_path or "config"
    raise ConfigError(
        [
            f"{where}: server.host: {host!r} listens beyond localhost without authentication; "
            "set MONITOR_INGEST_TOKEN (clients then send 'Authorization: Bearer <token>') "
            'or set server.host = "127.0.0.1"'
        ]
    )


def _token_check(settings: Settings) -> Callable[[Request], None]:
    secret = settings.secrets.ingest_token
    expected = f"Bearer {secret.get_secret_value()}".encode() if secret else None

    def require_token(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            raise HTTPProblem(
                401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="monitor"'}
            )

    return require_token


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 problem as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, f"body of {declared} bytes exceeds server.max_body_mb")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, "body exceeds server.max_body_mb")
        chunks.append(chunk)
    return b"".join(chunks)


class CatchAll:
    """ASGI middleware: an unexpected error answers 503 with a JSON error body, never a
    bare 500; the traceback is logged once, here. (A response already started cannot be
    replaced: then the connection is closed by the server.)"""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as err:
            log.exception("%s %s failed unexpectedly", scope.get("method"), scope.get("path"))
            if started:
                raise
            answer = JSONResponse(
                {"error": f"internal error ({type(err).__name__}); nothing of this request "
                          "is known to be stored: retry later or report it"},
                status_code=503,
            )
            await answer(scope, receive, send)


def _json_answer(content: Mapping[str, Any]) -> Response:
    """A 200 JSON answer serialized with orjson (no per-request pydantic or json)."""
    return Response(orjson.dumps(content), media_type="application/json")


def create_app(
    settings: Settings, engine: Engine, *, health: HealthFields | None = None
) -> FastAPI:
    """The HTTP app; `health` returns extra /healthz fields (e.g. scheduler state)."""
    check_bind(settings)
    app = FastAPI(title="monitor", version=__version__, docs_url=None, redoc_url=None)
    app.add_middleware(CatchAll)
    app.state.settings = settings
    app.state.engine = engine
    limit = int(settings.server.max_body_mb * 1024 * 1024)
    models = settings.models
    times = TimePolicy.from_settings(settings)  # bounds fixed per batch, from the clock

    @app.exception_handler(HTTPProblem)
    async def _problem(_request: Request, exc: HTTPProblem) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        # nothing of the request was stored: the sender keeps the rows and retries
        log.warning("%s %s: database unavailable, answered 503 (%s)", request.method,
                    request.url.path, str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)
        return JSONResponse({"error": "database unavailable, nothing was stored; retry later"},
                            status_code=503, headers={"Retry-After": "5"})

    router = APIRouter(prefix="/v1", dependencies=[Depends(_token_check(settings))])
    # batches posted at the same time share a transaction (one commit for all of them)
    group = group_commit(engine, "http")

    @router.post("/predictions")
    async def post_predictions(request: Request) -> Response:
        body = await read_body(request, limit)
        result = await run_in_threadpool(
            lambda: ingest_body(engine, models, body, source="http", group=group, times=times)
        )
        metrics.observe_ingest("http", result.accepted, result.reasons)
        return _json_answer(result.as_json())

    @router.post("/labels")
    async def post_labels(request: Request) -> Response:
        body = await read_body(request, limit)
        result = await run_in_threadpool(
            lambda: ingest_labels(engine, models, parse_body(body), source="http")
        )
        metrics.observe_ingest("http-labels", result.accepted, result.reasons)
        return _json_answer(result.as_json())

    app.include_router(router)

    probe = WriteProbe(engine, "server")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        fields: dict[str, Any] = {"version": __version__}
        database = await run_in_threadpool(probe.check)
        if not database.ok:  # unreachable, or refusing writes (read-only, full, locked)
            return JSONResponse({"status": "error", **database.to_dict(), **fields}, 503)
        if health is not None:
            fields.update(await run_in_threadpool(health))
        if fields.pop("healthy", True) is False:
            return JSONResponse({"status": "error", "database": "ok", **fields}, 503)
        return JSONResponse({"status": "ok", "database": "ok", **fields})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


class BackgroundServer:
    """Serve an app with uvicorn in a thread (the daemon, tests); port 0 picks a free port."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="monitor-http", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start listening; returns once the socket is bound."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        sockets = self._server.servers[0].sockets
        self.port = sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def app_from_config() -> FastAPI:
    """App factory for `monitor serve --workers N`: each worker process reads the
    configuration ($MONITOR_CONFIG) and opens its own engine."""
    from monitor.config import load_settings
    from monitor.store import make_engine

    settings = load_settings()
    return create_app(settings, make_engine(settings.database.url))


def serve(
    settings: Settings, engine: Engine, host: str | None = None, port: int | None = None,
    workers: int = 1,
) -> None:
    """Run the HTTP app in the foreground until interrupted (`monitor serve`).

    With `workers` > 1, uvicorn runs that many processes on one socket (ingest is
    CPU-bound Python: one process uses about one core).
    """
    import uvicorn

    host = host or settings.server.host
    port = port or settings.server.port
    check_bind(settings, host)
    log.info("listening on http://%s:%d (%d worker process%s)", host, port, workers,
             "es" if workers > 1 else "")
    if workers > 1:
        if settings.source_path is None:
            raise ConfigError(["--workers needs a configuration file (pass --config)"])
        os.environ[CONFIG_ENV] = str(settings.source_path)
        uvicorn.run("monitor.server:app_from_config", factory=True, workers=workers, host=host,
                    port=port, log_config=None, access_log=False)
        return
    uvicorn.run(create_app(settings, engine), host=host, port=port, log_config=None, access_log=False)
