"""The Slack feedback app (slack-bolt): buttons, the comment modal, thread replies and
`why <request_id>` mentions, over Socket Mode (default) or the signed HTTP endpoint.

Both transports share the same listeners. Every listener acknowledges first (Slack
wants an answer within 3 seconds) and does its work afterwards. Replays, foreign
workspaces, people and channels not allowed, and messages monitor did not post change
nothing; people get an ephemeral refusal.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from slack_bolt import App, BoltRequest, BoltResponse
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.slack import messages
from monitor.slack.handlers import FeedbackService
from monitor.slack.notifier import make_client
from monitor.slack.security import (
    SlackRequestRefused,
    check_signature_headers,
    parse_body,
    payload_problem,
    request_key,
    verify_signature,
)
from monitor.store import feedback as repo
from monitor.store.engine import transaction

log = logging.getLogger(__name__)
VERDICT_ACTION = re.compile("^(" + "|".join(messages.VERDICT_ACTIONS) + ")$")


@dataclass
class FeedbackHandle:
    """What `start_feedback` returns: `stop()` ends the Socket Mode connection."""

    app: App
    mode: str
    socket_handler: Any = None

    def stop(self) -> None:
        if self.socket_handler is not None:
            self.socket_handler.close()
            log.info("slack socket mode connection closed")


def build_app(settings: Settings, engine: Engine, client: Any) -> App:
    """The Bolt app with monitor's middleware (origin and replay checks) and listeners."""
    app = App(
        client=client,
        token_verification_enabled=False,
        request_verification_enabled=False,
        ignoring_self_events_enabled=False,
        process_before_response=False,
        logger=logging.getLogger("slack_bolt.monitor"),
    )
    service = FeedbackService(settings, engine, client)

    @app.middleware
    def _screen(body: dict[str, Any], next: Any, logger: Any) -> Any:  # noqa: A002 - Bolt's name
        malformed = payload_problem(body)  # the HTTP route refused these already; Socket Mode here
        if malformed:
            log.warning("slack payload of a shape Slack never sends: %s", malformed[:300])
            return BoltResponse(status=400, body="malformed payload")
        problem = service.gate.origin_problem(body)
        if problem:
            log.warning("slack payload refused: %s", problem)
            return BoltResponse(status=200, body="")
        key = request_key(body)
        if key:
            with transaction(engine) as session:
                seen = repo.is_processed(session, key)
            if seen:
                log.info("slack request %s already handled: ignored (replay or retry)", key)
                return BoltResponse(status=200, body="")
        return next()

    @app.action(VERDICT_ACTION)
    def _verdict(ack: Any, body: dict[str, Any]) -> None:
        ack()
        service.on_verdict(body)

    @app.action(messages.FEATURE_VERDICT_ACTION)
    def _feature_verdict(ack: Any, body: dict[str, Any]) -> None:
        ack()
        service.on_feature_verdict(body)

    @app.action(messages.COMMENT_ACTION)
    def _comment(ack: Any, body: dict[str, Any]) -> None:
        ack()
        service.on_comment_button(body)

    @app.action(messages.REBASELINE_ACTION)
    def _rebaseline(ack: Any, body: dict[str, Any]) -> None:
        ack()
        service.on_rebaseline(body)

    @app.view(messages.COMMENT_CALLBACK)
    def _submitted(ack: Any, body: dict[str, Any]) -> None:
        values = body["view"]["state"]["values"]
        comment = (
            values.get(messages.COMMENT_BLOCK, {}).get(messages.COMMENT_INPUT, {}).get("value")
            or ""
        ).strip()
        if not comment:
            ack(response_action="errors", errors={messages.COMMENT_BLOCK: messages.EMPTY_COMMENT})
            return
        if not service.gate.user_allowed(body["user"]["id"]):
            ack(response_action="errors", errors={messages.COMMENT_BLOCK: messages.REFUSED_USER})
            return
        ack()
        service.on_comment_submitted(body, comment)

    @app.event("app_mention")
    def _mention(ack: Any, body: dict[str, Any]) -> None:
        ack()
        service.on_mention(body)

    @app.event("message")
    def _message(ack: Any, body: dict[str, Any]) -> None:
        ack()
        service.on_thread_message(body)

    return app


class BodyTooLarge(Exception):
    """A request body over the limit (answered 413, the rest left unread)."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refused by its Content-Length or as soon as the stream passes `limit`
    bytes: an oversized body is never buffered whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds server.max_body_mb")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("body exceeds server.max_body_mb")
        chunks.append(chunk)
    return b"".join(chunks)


def add_http_route(
    fastapi_app: Any, app: App, signing_secret: str, *, max_body: int = 32 * 1024 * 1024
) -> None:
    """`POST /slack/events` on the daemon's FastAPI app: check the headers and the size,
    read at most `max_body` bytes, verify the signature, then parse and hand to Bolt."""
    from starlette.concurrency import run_in_threadpool

    @fastapi_app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        headers = dict(request.headers)
        try:
            check_signature_headers(headers)  # an unsigned request is refused unread
            body = await read_capped(request, max_body)
            verify_signature(signing_secret, body, headers)
        except SlackRequestRefused as err:
            log.warning("slack request refused: %s", err)
            return Response(status_code=401, content="invalid request")
        except BodyTooLarge as err:
            log.warning("slack request refused: %s", err)
            return Response(status_code=413, content="request body too large")
        try:
            text = body.decode("utf-8")
            problem = payload_problem(parse_body(text, headers.get("content-type")))
        except (UnicodeDecodeError, ValueError, KeyError, IndexError, RecursionError) as err:
            problem = f"{type(err).__name__}: {err}"
        if problem:
            log.warning("signed slack request is malformed: %s", problem[:300])
            return Response(status_code=400, content="malformed payload")
        try:
            bolt_request = BoltRequest(
                body=text,
                query=str(request.query_params),
                headers={k: [v] for k, v in headers.items()},
            )
            response = await run_in_threadpool(app.dispatch, bolt_request)
        except Exception:  # noqa: BLE001 - a payload Bolt cannot take is the sender's fault
            log.warning("slack request could not be dispatched", exc_info=True)
            return Response(status_code=400, content="malformed payload")
        if response.status >= 500:
            # Bolt answers 500 when a middleware fails (e.g. Slack unreachable for
            # auth.test): Slack retries a 503, and nothing is bare
            return Response(status_code=503, content='{"error": "slack app unavailable"}',
                            media_type="application/json", headers={"Retry-After": "5"})
        return Response(
            status_code=response.status,
            content=response.body,
            headers={
                k: v[0] for k, v in response.headers.items() if v and k.lower() != "content-length"
            },
        )


def start_feedback(
    settings: Settings, engine: Engine, fastapi_app: Any = None
) -> FeedbackHandle | None:
    """Start receiving Slack feedback; returns a handle with `stop()`, or None when Slack
    is off (or not set up enough to receive anything)."""
    secrets = settings.secrets
    if not settings.slack.enabled or secrets.slack_bot_token is None:
        return None
    client = make_client(secrets.slack_bot_token.get_secret_value(), settings.slack.api_url)
    app = build_app(settings, engine, client)
    if settings.slack.mode == "http":
        if secrets.slack_signing_secret is None or fastapi_app is None:
            log.warning(
                "slack.mode = http needs SLACK_SIGNING_SECRET and the HTTP server: feedback is off"
            )
            return None
        add_http_route(fastapi_app, app, secrets.slack_signing_secret.get_secret_value(),
                       max_body=int(settings.server.max_body_mb * 1024 * 1024))
        log.info("slack feedback: HTTP endpoint POST /slack/events")
        return FeedbackHandle(app, "http")
    if secrets.slack_app_token is None:
        log.warning("slack.mode = socket needs SLACK_APP_TOKEN (xapp-...): feedback is off")
        return None
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, secrets.slack_app_token.get_secret_value(), web_client=client)
    handler.connect()
    log.info("slack feedback: Socket Mode connected")
    return FeedbackHandle(app, "socket", handler)
