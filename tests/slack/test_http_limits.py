"""`/slack/events` under hostile requests (issue 11): the size limit is enforced before
the body is read, the signature is checked before parsing, malformed signed payloads get
400, and a 300 MB unsigned body does not grow the serving process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from monitor.server import BackgroundServer
from monitor.slack.app import start_feedback
from tests.slack import payloads
from tests.slack.conftest import SIGNING_SECRET, make_settings

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
REPO = Path(__file__).resolve().parents[2]


def _app(engine, emulator, max_body_mb: float = 32.0) -> FastAPI:
    settings = make_settings(emulator, mode="http")
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"max_body_mb": max_body_mb})}
    )
    app = FastAPI()
    handle = start_feedback(settings, engine, app)
    assert handle is not None and handle.mode == "http"
    return app


MALFORMED = {
    "bad-json": (b'{"type": "event_callback", ', "application/json"),
    "invalid-utf8": (b'{"type": "\xff\xfe"}', "application/json"),
    "json-array": (b"[1, 2, 3]", "application/json"),
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "form-bad-payload": (b"payload=%7Bnot+json", "application/x-www-form-urlencoded"),
    "form-invalid-utf8": (b"payload=\xff\xfe", "application/x-www-form-urlencoded"),
}


@sqlite_only
@pytest.mark.parametrize("case", MALFORMED, ids=MALFORMED.keys())
def test_signed_but_malformed_payload_gets_400(engine, emulator, frozen, case):
    body, ctype = MALFORMED[case]
    client = TestClient(_app(engine, emulator), raise_server_exceptions=False)
    headers = payloads.signed(SIGNING_SECRET, body, int(frozen.now.timestamp()), content_type=ctype)
    answer = client.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 400, answer.text


@sqlite_only
def test_declared_oversized_body_gets_413_and_unsigned_gets_401(engine, emulator, frozen):
    client = TestClient(_app(engine, emulator, max_body_mb=0.01), raise_server_exceptions=False)
    big = b'{"type": "event_callback", "x": "' + b"a" * 20_000 + b'"}'
    headers = payloads.signed(SIGNING_SECRET, big, int(frozen.now.timestamp()),
                              content_type="application/json")
    assert client.post("/slack/events", content=big, headers=headers).status_code == 413
    assert client.post("/slack/events", content=big).status_code == 401


def _raw_request(
    port: int, headers: dict[str, str], chunks: int, chunk: bytes, pause: float = 0.0
) -> tuple[int, int]:
    """Send a chunked POST to /slack/events, chunk by chunk (`pause` s apart), stopping
    as soon as an answer arrives; returns (status, bytes of body sent before it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    sent = 0
    sock.setblocking(False)
    answer = b""
    try:
        for _ in range(chunks):
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(4096)
            if answer:
                break
            try:
                sock.setblocking(True)
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
                time.sleep(pause)
            except OSError:
                break
            finally:
                sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(10)
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    return int(answer.split(b" ", 2)[1]), sent


@sqlite_only
def test_streamed_bodies_are_refused_without_being_read(engine, emulator, frozen):
    """Unsigned: refused from the headers alone. Forged signature: read up to the limit
    (1 MB here), then 413, though the sender would go on for 64 MB."""
    app = _app(engine, emulator, max_body_mb=1.0)
    chunk = b"a" * 65_536
    forged = {"X-Slack-Request-Timestamp": str(int(frozen.now.timestamp())),
              "X-Slack-Signature": "v0=00"}
    with BackgroundServer(app) as server:
        # 5 ms between chunks: time for the server to answer as soon as it can; what the
        # loopback socket buffers (up to ~1 MB) was sent but never read by the server
        status, sent = _raw_request(server.port, {}, 1024, chunk, pause=0.005)
        assert status == 401 and sent <= 16 * len(chunk), sent
        status, sent = _raw_request(server.port, forged, 1024, chunk, pause=0.005)
        assert status == 413
        assert sent <= 1024 * 1024 + 16 * len(chunk), sent


SERVE = textwrap.dedent("""
    import sys
    import uvicorn
    from monitor.config import SlackConfig, Settings, Secrets
    from monitor.server import create_app
    from monitor.slack.app import start_feedback
    from monitor.store import make_engine, upgrade

    engine = make_engine(sys.argv[1])
    upgrade(engine)
    settings = Settings(
        slack=SlackConfig(enabled=True, mode="http", channel="C1",
                          api_url="http://127.0.0.1:9/api/"),
        secrets=Secrets(slack_bot_token="xoxb-1", slack_signing_secret="s" * 32),
    )
    app = create_app(settings, engine)  # the daemon's app, as in Daemon.run
    start_feedback(settings, engine, app)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_config=None)
""")


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.mark.slow
def test_300mb_unsigned_body_does_not_grow_the_server(tmp_path):
    """A real server process: peak RSS (VmHWM) after a 300 MB unsigned body, sent both
    with a Content-Length and chunked with a forged signature, stays within 50 MB of idle."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, f"sqlite:///{tmp_path / 'm.db'}", str(port)],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        idle = _kib(proc.pid, "VmRSS")
        total = 300 * 1024 * 1024
        chunk = b"a" * (1024 * 1024)

        def body():
            for _ in range(total // len(chunk)):
                yield chunk

        try:
            answer = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body(),
                                headers={"Content-Length": str(total)}, timeout=60)
            assert answer.status_code == 401
        except httpx.TransportError:
            pass  # refused and closed while we were still sending: equally fine
        forged = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=1"}
        status, sent = _raw_request(port, forged, 300, chunk)
        assert status == 413 and sent < total
        peak = _kib(proc.pid, "VmHWM")
        print(f"idle RSS {idle / 1024:.0f} MB, peak {peak / 1024:.0f} MB after 300 MB bodies")
        assert peak - idle < 50 * 1024, (idle, peak)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


ODD_SHAPES = {
    "type-not-text": (b'{"type": 5}', "application/json"),
    "event-not-object": (b'{"type": "event_callback", "event": "x"}', "application/json"),
    "event-fields-odd": (b'{"type": "event_callback", "event": {"type": "message", "channel": 5},'
                         b' "event_id": 3}', "application/json"),
    "actions-not-list": (payloads.form({"type": "block_actions", "actions": "x"}),
                         "application/x-www-form-urlencoded"),
    "action-fields-odd": (payloads.form({"type": "block_actions", "actions": [{"action_id": 5}],
                                         "user": 3}), "application/x-www-form-urlencoded"),
    "view-not-object": (payloads.form({"type": "view_submission", "view": 7}),
                        "application/x-www-form-urlencoded"),
    "team-a-list": (b'{"type": "event_callback", "team_id": ["x"], "event": {"type":'
                    b' "app_mention", "text": 5}}', "application/json"),
}


def _click(drop: tuple[str, ...] = (), **changes):
    """A well-formed button click with some fields replaced and those in `drop` removed."""
    body = {**payloads.click(1, "1700000000.000100"), **changes}
    for name in drop:
        body.pop(name)
    return payloads.form(body), "application/x-www-form-urlencoded"


#: signed payloads Slack never sends, of a known type: refused as malformed (400), never
#: answered 404 (no listener) or 503 (a listener failing) with a traceback in the log
MALFORMED_SHAPES = {
    "actions-empty": _click(actions=[]),
    "user-null": _click(user=None),
    "user-missing": _click(drop=("user",)),
    "user-without-id": _click(user={"name": "x"}),
    "user-id-number": _click(user={"id": 5}),
    "action-without-id": _click(actions=[{"value": "1"}]),
    "action-value-object": _click(actions=[{"action_id": "monitor_acknowledge", "value": {"x": 1}}]),
    "view-without-state": (payloads.form({"type": "view_submission", "user": {"id": "U1"},
                                          "view": {"callback_id": "monitor_comment_modal"}}),
                           "application/x-www-form-urlencoded"),
    "view-user-null": (payloads.form({**payloads.submission(1, "1.2", "hi"), "user": None}),
                       "application/x-www-form-urlencoded"),
    "event-without-type": (b'{"type": "event_callback", "event_id": "Ev9", "event": {}}',
                           "application/json"),
    "metadata-object": (payloads.form({**payloads.submission(1, "1.2", "hi"),
                                       "view": {**payloads.submission(1, "1.2", "hi")["view"],
                                                "private_metadata": {"alert_id": 1}}}),
                        "application/x-www-form-urlencoded"),
}


@sqlite_only
@pytest.mark.parametrize("case", MALFORMED_SHAPES, ids=MALFORMED_SHAPES.keys())
def test_signed_payload_of_a_shape_slack_never_sends_gets_400(engine, emulator, frozen, caplog, case):
    body, ctype = MALFORMED_SHAPES[case]
    client = TestClient(_app(engine, emulator), raise_server_exceptions=False)
    headers = payloads.signed(SIGNING_SECRET, body, int(frozen.now.timestamp()), content_type=ctype)
    answer = client.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 400, (answer.status_code, answer.text)
    assert not [r for r in caplog.records if r.exc_info], "a malformed payload logged a traceback"


@sqlite_only
@pytest.mark.parametrize("case", ODD_SHAPES, ids=ODD_SHAPES.keys())
def test_signed_payload_of_an_odd_shape_never_gets_500(engine, emulator, frozen, case):
    body, ctype = ODD_SHAPES[case]
    client = TestClient(_app(engine, emulator), raise_server_exceptions=False)
    headers = payloads.signed(SIGNING_SECRET, body, int(frozen.now.timestamp()), content_type=ctype)
    answer = client.post("/slack/events", content=body, headers=headers)
    assert answer.status_code < 500, (answer.status_code, answer.text)
