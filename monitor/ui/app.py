"""HTTP routes of the dashboard (/ui/...): pages, sign-in, feedback actions, static files.

Page handlers are plain functions (FastAPI runs them in its thread pool, so database
reads never block the event loop); POST handlers read the url-encoded form, check the
session, its CSRF token and read-only mode, then act in a worker thread. Every answer
carries the dashboard's Content-Security-Policy (no inline script); Evidently's own page
is served in an opaque-origin sandbox, so nothing in it reaches the dashboard's origin.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from monitor import __version__, clock
from monitor.config import Settings
from monitor.errors import ConfigError, DatabaseError, MonitorError, NotFoundError
from monitor.store.heartbeat import WriteProbe
from monitor.ui import pages, views
from monitor.ui.auth import COOKIE, LOGIN_COOKIE, Auth, Session, same_token
from monitor.ui.markup import DASHBOARD_CSP, sandboxed_csp, script_hashes

log = logging.getLogger(__name__)

#: form bodies above this are refused (a comment is short)
MAX_FORM = 64 * 1024
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN",
           "Content-Security-Policy": DASHBOARD_CSP}


class UIProblem(Exception):
    """An HTTP error of the dashboard, answered as an HTML page."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _plotly_js() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise UIProblem(503, "the plotly package is not installed: charts cannot be drawn")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def _safe_next(target: str | None) -> str:
    """Only redirect within the dashboard (no open redirect)."""
    if target and target.startswith("/ui/") and "//" not in target and "\\" not in target:
        return target
    return "/ui/"


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise UIProblem(413, "form too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def ui_router(settings: Settings, engine: Engine, host: str | None = None) -> APIRouter:
    """The /ui routes; `host` is where the server listens (decides whether sign-in is needed)."""
    auth = Auth(settings, host)
    auth.check_usable()
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def current(request: Request) -> Session | None:
        return auth.decode(request.cookies.get(COOKIE))

    def viewer(request: Request) -> Session | None:
        """The session; a page beyond localhost (or with tokens set) needs one."""
        session = current(request)
        if session is None and auth.sign_in_required:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise _SignIn(target)
        return session

    def actor(request: Request, form: dict[str, str]) -> Session:
        """The session of a state-changing request: signed in, CSRF token matching."""
        session = current(request)
        if session is None:
            raise UIProblem(403, "sign in with your name first: no action without a name")
        if not same_token(form.get("csrf"), session.csrf):
            raise UIProblem(403, "missing or wrong CSRF token: reload the page and try again")
        return session

    @router.get("/static/plotly.min.js")
    def plotly_js() -> FileResponse:
        return FileResponse(_plotly_js(), media_type="text/javascript",
                            headers={**HEADERS, "Cache-Control": "public, max-age=86400"})

    @router.get("/static/ui.js")
    def ui_js() -> Response:
        return Response(pages.JS, media_type="text/javascript",
                        headers={**HEADERS, "Cache-Control": "max-age=3600"})

    @router.get("/static/ui.css")
    def ui_css() -> Response:
        return Response(pages.CSS, media_type="text/css",
                        headers={**HEADERS, "Cache-Control": "max-age=3600"})

    @router.get("/login")
    def login_form(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
        nonce = auth.login_nonce()
        if auth.users and auth.shared:
            how = "your token (named users), or the shared token with your name"
        elif auth.users:
            how = "your personal token"
        elif auth.shared:
            how = "the shared token (MONITOR_UI_TOKEN) and your name"
        else:
            how = "your name (this dashboard listens on localhost only)"
        token = ("<p><label>token <input name='token' type='password' autocomplete='current-password'>"
                 "</label></p>") if auth.tokens_configured else ""
        body = (
            f"<form class='card' method='post' action='/ui/login'><p>Sign in with {pages.e(how)}. "
            "Feedback you give is recorded with this name.</p>"
            f"<input type='hidden' name='csrf' value='{nonce}'>"
            f"<input type='hidden' name='next' value='{pages.e(_safe_next(next))}'>"
            "<p><label>name <input name='name' autocomplete='name' maxlength='64'></label></p>"
            f"{token}<p><button type='submit'>sign in</button></p></form>"
        )
        response = _html(pages.page("Sign in", body, None))
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/ui",
                            secure=request.url.scheme == "https", max_age=3600)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            raise UIProblem(403, "missing or wrong CSRF token on the sign-in form: reload it")
        session = auth.sign_in(form.get("name", ""), form.get("token", ""))
        if session is None:
            log.warning("dashboard sign-in refused (name %r)", form.get("name", "")[:64])
            return _html(pages.page("Sign in", "<p class='bad'>sign-in refused: a name is required, "
                                    "and the token must match</p><p><a href='/ui/login'>try again</a></p>",
                                    None), 403)
        log.info("dashboard: %s signed in (%s)", session.name, session.how)
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303, headers=HEADERS)
        response.set_cookie(COOKIE, auth.encode(session), httponly=True, samesite="strict", path="/ui",
                            secure=request.url.scheme == "https", max_age=int(auth.lifetime))
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        actor(request, await _form(request))
        response = RedirectResponse("/ui/", status_code=303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    @router.get("/")
    def overview(request: Request) -> HTMLResponse:
        session = viewer(request)
        return _html(pages.page("Models", views.overview(settings, engine), session))

    @router.get("/models/{name}")
    def model(request: Request, name: str, days: int | None = None) -> HTMLResponse:
        session = viewer(request)
        span = max(1, min(days or settings.ui.default_days, 3660))
        body = views.model_page(settings, engine, name, span)
        return _html(pages.page(f"Model {name}", body, session, charts=True))

    @router.get("/cards/{name}")
    def card(request: Request, name: str) -> HTMLResponse:
        viewer(request)
        return HTMLResponse(views.card_page(settings, engine, name), headers=HEADERS)

    @router.get("/runs/{run_id}")
    def run(request: Request, run_id: int) -> HTMLResponse:
        session = viewer(request)
        title, body = views.run_page(settings, engine, run_id)
        return _html(pages.page(title, body, session, heading=False))  # the report has its own

    @router.get("/runs/{run_id}/evidently")
    def evidently(request: Request, run_id: int) -> HTMLResponse:
        viewer(request)
        from monitor.report import evidently_page

        page = evidently_page(settings, engine, run_id)
        # an opaque origin even when opened alone: its scripts (allowed by hash) cannot
        # read the dashboard's cookies, CSRF tokens or pages, nor send anything anywhere
        return HTMLResponse(page, headers={**HEADERS, "Cache-Control": "private, max-age=600",
                                           "Content-Security-Policy": sandboxed_csp(script_hashes(page))})

    @router.get("/alerts")
    def alerts(request: Request, model: str | None = None, status: str | None = None) -> HTMLResponse:
        session = viewer(request)
        return _html(pages.page("Alerts", views.alerts_page(engine, model, status), session))

    @router.get("/alerts/{alert_id}")
    def alert(request: Request, alert_id: int, done: str | None = None) -> HTMLResponse:
        session = viewer(request)
        flash = f"recorded: {done}" if done else None
        title, body = views.alert_page(settings, engine, alert_id, session, flash)
        return _html(pages.page(title, body, session))

    @router.post("/alerts/{alert_id}/feedback")
    async def feedback(request: Request, alert_id: int) -> Response:
        form = await _form(request)
        session = actor(request, form)
        if settings.ui.read_only:
            raise UIProblem(403, "this dashboard is read-only ([ui] read_only = true)")
        verdict, comment = form.get("verdict", ""), (form.get("comment") or "").strip() or None
        if verdict == "comment" and not comment:
            raise UIProblem(400, "a comment needs some text")
        await run_in_threadpool(_give_feedback, settings, engine, alert_id, verdict, session, comment)
        return RedirectResponse(f"/ui/alerts/{alert_id}?{pages.query(done=verdict)}", status_code=303,
                                headers=HEADERS)

    @router.get("/why")
    def why(request: Request) -> HTMLResponse:
        session = viewer(request)
        from monitor.ui.why import why_page

        params = request.query_params
        changes = {k[4:]: v for k, v in params.multi_items() if k.startswith("set.") and v != ""}
        body, charts = why_page(settings, engine, params.get("model"), params.get("request_id"), changes,
                                params.get("counterfactual") == "1")
        return _html(pages.page("Why and what-if", body, session, charts=charts))

    return router


class _SignIn(Exception):
    def __init__(self, target: str):
        super().__init__(target)
        self.target = target


def _give_feedback(settings: Settings, engine: Engine, alert_id: int, verdict: str, session: Session,
                   comment: str | None) -> None:
    """Apply one answer through the same policy path as the Slack buttons."""
    from monitor.policies import apply_feedback
    from monitor.store import transaction
    from monitor.store.alerts import get_alert

    with transaction(engine) as db:
        alert = get_alert(db, alert_id)
        if alert is None:
            raise NotFoundError(f"alert {alert_id} does not exist")
        apply_feedback(db, alert, verdict, user_id=f"ui:{session.name}", user_name=session.name,
                       comment=comment, source="ui", external_id=None, config=settings.feedback,
                       now=clock.utcnow())


def mount_ui(app: FastAPI, settings: Settings, engine: Engine, host: str | None = None) -> None:
    """Add the dashboard to `app` (the daemon's or `monitor ui`'s), with its error pages."""
    app.include_router(ui_router(settings, engine, host))

    @app.get("/ui", include_in_schema=False)
    def _ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307, headers=HEADERS)

    def problem_page(request: Request, status: int, detail: str) -> Response:
        if not request.url.path.startswith("/ui"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": detail}, status_code=status)
        return _html(pages.page(f"Error {status}", f"<p class='bad'>{pages.e(detail)}</p>", None), status)

    @app.exception_handler(UIProblem)
    async def _problem(request: Request, exc: UIProblem) -> Response:
        return problem_page(request, exc.status, exc.detail)

    @app.exception_handler(_SignIn)
    async def _sign_in(_request: Request, exc: _SignIn) -> Response:
        return RedirectResponse(f"/ui/login?{pages.query(next=exc.target)}", status_code=303, headers=HEADERS)

    @app.exception_handler(MonitorError)
    async def _monitor_error(request: Request, exc: MonitorError) -> Response:
        if not request.url.path.startswith("/ui"):
            raise exc  # the rest of the app keeps its own answers (CatchAll: 503)
        if isinstance(exc, DatabaseError):
            log.warning("%s: database unavailable (%s)", request.url.path, exc)
            status = 503
        else:
            status = 404 if isinstance(exc, NotFoundError | ConfigError) else 400
        return problem_page(request, status, str(exc))


def mount_ui_if_usable(app: FastAPI, settings: Settings, engine: Engine) -> bool:
    """The daemon's mount: the dashboard at /ui/, unless it would listen beyond
    localhost with no way to sign in (then a warning, and no dashboard)."""
    try:
        mount_ui(app, settings, engine)
    except ConfigError as err:
        log.warning("dashboard not served: %s", err)
        return False
    log.info("dashboard on http://%s:%d/ui/", settings.server.host, settings.server.port)
    return True


def create_ui_app(settings: Settings, engine: Engine, host: str | None = None) -> FastAPI:
    """The dashboard alone (`monitor ui`), with /healthz."""
    from monitor.server import CatchAll

    app = FastAPI(title="monitor dashboard", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(CatchAll)
    mount_ui(app, settings, engine, host)

    probe = WriteProbe(engine, "ui")

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """200 while the database takes writes (feedback is written); else 503."""
        database = probe.check()
        fields = {"status": "ok" if database.ok else "error", **database.to_dict(), "version": __version__}
        return JSONResponse(fields, 200 if database.ok else 503)

    return app
