"""A loopback Slack: the Web API methods monitor uses, and a Socket Mode WebSocket server.

Tests start it on a free port and point `WebClient(base_url=emulator.api_url)` at it.
It keeps the messages posted per channel (with metadata, threads and updates), the
files uploaded, every call made, and can answer with 429/5xx on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import websockets
from websockets.asyncio.server import serve as ws_serve

BOT_USER, TEAM, APP = "UBOT", "T123", "A123"


@dataclass
class Failure:
    status: int
    retry_after: int | None = None
    #: do the work (e.g. store the post) and still answer with the failure
    after_work: bool = False
    #: do the work, then drop the connection without answering (status is ignored)
    drop: bool = False


@dataclass
class SlackState:
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    completed: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    #: method -> failures to answer with, one per call, before behaving again
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    #: every method fails with 503 while True
    down: bool = False
    ts_counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [params for name, params in self.calls if name == method]

    def top_level(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages.get(channel, []) if not m.get("thread_ts")]

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages.get(channel, []) if m.get("thread_ts") == thread_ts]


def _decode(handler: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any]:
    ctype = handler.headers.get("Content-Type", "")
    if not raw:
        return {}
    if "json" in ctype:
        return json.loads(raw)
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


class SlackEmulator:
    """Start with `start()`; `api_url` is the base_url for WebClient; `stop()` at the end."""

    def __init__(self) -> None:
        self.state = SlackState()
        self.socket = SocketModeServer()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                emulator._handle(self, raw)

            def do_GET(self) -> None:  # noqa: N802 - slack-sdk may send reads as GET
                emulator._handle(self, b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api/"
        self.webhook_url = f"http://127.0.0.1:{self.port}/webhook/T0/B0/secret"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SlackEmulator:
        self._thread.start()
        self.socket.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.socket.stop()

    def fail(self, method: str, *failures: Failure) -> None:
        with self.state.lock:
            self.state.failures.setdefault(method, []).extend(failures)

    # -- dispatch -------------------------------------------------------------------

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any] | str,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        path = handler.path.split("?")[0]
        if path.startswith("/upload/"):
            with self.state.lock:
                self.state.uploads[path.rsplit("/", 1)[1]] = raw
            handler.send_response(200)
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"OK")
            return
        if path.startswith("/webhook"):
            with self.state.lock:
                failure = (
                    self.state.failures.get("webhook", [None]).pop(0)
                    if self.state.failures.get("webhook")
                    else None
                )
                if failure is None:
                    self.state.webhooks.append(json.loads(raw or b"{}"))
            status = failure.status if failure else 200
            headers = (
                {"Retry-After": str(failure.retry_after)} if failure and failure.retry_after else {}
            )
            self._send(handler, status, "ok" if status == 200 else "rate_limited", headers)
            return
        method = path.removeprefix("/api/")
        query = {k: v[0] for k, v in parse_qs(handler.path.partition("?")[2]).items()}
        params = {k: _maybe_json(v) for k, v in {**query, **_decode(handler, raw)}.items()}
        with self.state.lock:
            self.state.calls.append((method, params))
            failure = None
            if self.state.down:
                failure = Failure(503)
            elif self.state.failures.get(method):
                failure = self.state.failures[method].pop(0)
        if failure and not (failure.after_work or failure.drop):
            headers = (
                {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            )
            self._send(
                handler,
                failure.status,
                {
                    "ok": False,
                    "error": "ratelimited" if failure.status == 429 else "internal_error",
                },
                headers,
            )
            return
        route: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, "_" + method.replace(".", "_"), None
        )
        body = route(params) if route else {"ok": False, "error": "unknown_method"}
        if failure and failure.drop:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if failure:
            self._send(handler, failure.status, {"ok": False, "error": "internal_error"})
            return
        self._send(handler, 200, body)

    def _next_ts(self) -> str:
        with self.state.lock:
            self.state.ts_counter += 1
            return f"{int(time.time())}.{self.state.ts_counter:06d}"

    # -- methods --------------------------------------------------------------------

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "user_id": BOT_USER,
            "bot_id": "BBOT",
            "team_id": TEAM,
            "user": "monitor",
            "team": "Test",
            "url": "https://test.slack.com/",
        }

    def _chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - Slack's name
        channel = p.get("channel")
        channel = "C_ALERTS" if channel in ("#alerts", "alerts") else channel
        message = {
            "ts": self._next_ts(),
            "text": p.get("text"),
            "blocks": p.get("blocks"),
            "thread_ts": p.get("thread_ts"),
            "metadata": p.get("metadata"),
            "bot_id": "BBOT",
        }
        with self.state.lock:
            self.state.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            for message in self.state.messages.get(p["channel"], []):
                if message["ts"] == p["ts"]:
                    message.update(text=p.get("text"), blocks=p.get("blocks"), edited=True)
                    return {"ok": True, "channel": p["channel"], "ts": p["ts"]}
        return {"ok": False, "error": "message_not_found"}

    def _chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        with self.state.lock:
            self.state.ephemeral.append(p)
        return {"ok": True, "message_ts": self._next_ts()}

    def _conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "messages": list(reversed(self.state.top_level(p["channel"]))),
            "has_more": False,
        }

    def _conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "messages": self.state.replies(p["channel"], p["ts"]),
            "has_more": False,
        }

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            self.state.views.append(p)
        return {"ok": True, "view": {"id": "V" + uuid.uuid4().hex[:8], **(p.get("view") or {})}}

    def _files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        file_id = "F" + uuid.uuid4().hex[:10]
        return {
            "ok": True,
            "file_id": file_id,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
        }

    def _files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        with self.state.lock:
            self.state.completed.append(p)
        return {
            "ok": True,
            "files": [{"id": f["id"], "title": f.get("title")} for f in p.get("files", [])],
        }

    def _apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.socket.url}


class SocketModeServer:
    """A Socket Mode WebSocket endpoint: sends envelopes to the app and records its acks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.acks: dict[str, dict[str, Any]] = {}
        self.connected = threading.Event()
        self._clients: set[Any] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: Any = None
        self.url = ""

    def start(self) -> None:
        self._thread.start()

        async def open_server() -> Any:
            return await ws_serve(self._session, "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(open_server(), self.loop).result(5)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/link"

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _session(self, ws: Any) -> None:
        self._clients.add(ws)
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "emulator"},
                    "connection_info": {"app_id": APP},
                }
            )
        )
        self.connected.set()
        try:
            async for raw in ws:
                data = json.loads(raw)
                if "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
        except websockets.ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)

    def nudge(self) -> None:
        """Ping every client: a blocked receive loop wakes up and can close quickly."""

        async def ping() -> None:
            for ws in list(self._clients):
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.ping()

        asyncio.run_coroutine_threadsafe(ping(), self.loop).result(5)

    def close_client(self, stop: Callable[[], None]) -> None:
        """Run a client's `stop` while nudging it, so tests do not wait for its poll timeout."""
        worker = threading.Thread(target=stop)
        worker.start()
        while worker.is_alive():
            self.nudge()
            worker.join(0.05)

    def send(self, kind: str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send one envelope ("interactive" or "events_api") and wait for the app's ack."""
        if not self.connected.wait(timeout):
            raise TimeoutError("no Socket Mode client connected")
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "interactive",
            "retry_attempt": 0,
        }

        async def push() -> None:
            for ws in list(self._clients):
                await ws.send(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(push(), self.loop).result(5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if envelope_id in self.acks:
                return self.acks[envelope_id]
            time.sleep(0.02)
        raise TimeoutError(f"envelope {envelope_id} was not acknowledged")
