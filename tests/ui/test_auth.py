"""Dashboard auth with FastAPI's TestClient: sign-in, the session cookie, CSRF, read-only."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.store import transaction
from monitor.store.dashboard import alert_feedback
from monitor.ui import create_ui_app
from monitor.ui.auth import Auth, parse_users
from tests.models import CONFIG, FEATURES

#: auth does not depend on the backend: SQLite only (the store queries run on both)
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _settings(db_url, model_dir, write_config, env=None, extra=""):
    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    return load_settings(write_config(extra + body), env=env or {})


def _csrf(html: str) -> str:
    return re.search(r"name='csrf' value='([^']+)'", html).group(1)


def _sign_in(client: TestClient, name: str, token: str = "") -> TestClient:
    page = client.get("/ui/login")
    assert page.status_code == 200
    answer = client.post("/ui/login", data={"csrf": _csrf(page.text), "name": name, "token": token,
                                            "next": "/ui/alerts"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


@sqlite_only
def test_beyond_localhost_every_page_needs_a_token(db_url, engine, model_dir, write_config):
    settings = _settings(db_url, model_dir, write_config, env={"MONITOR_UI_TOKEN": "s3cret-token"})
    client = TestClient(create_ui_app(settings, engine, host="0.0.0.0"))
    first = client.get("/ui/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/ui/login")
    page = client.get("/ui/login")
    wrong = client.post("/ui/login", data={"csrf": _csrf(page.text), "name": "ann", "token": "nope"})
    assert wrong.status_code == 403
    page = client.get("/ui/login")
    ok = client.post("/ui/login", data={"csrf": _csrf(page.text), "name": "ann", "token": "s3cret-token"},
                     follow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "s3cret-token" not in cookie
    assert client.get("/ui/").status_code == 200
    # a forged cookie is not a session
    forged = TestClient(create_ui_app(settings, engine, host="0.0.0.0"))
    forged.cookies.set("monitor_ui", client.cookies.get("monitor_ui"), path="/ui")
    assert forged.get("/ui/", follow_redirects=False).status_code == 303  # other server key


@sqlite_only
def test_login_form_itself_needs_its_csrf_token(db_url, engine, model_dir, write_config):
    settings = _settings(db_url, model_dir, write_config, env={"MONITOR_UI_TOKEN": "tok"})
    client = TestClient(create_ui_app(settings, engine, host="0.0.0.0"))
    client.get("/ui/login")
    assert client.post("/ui/login", data={"csrf": "guess", "name": "x", "token": "tok"}).status_code == 403


@sqlite_only
def test_beyond_localhost_without_tokens_is_refused(db_url, engine, model_dir, write_config):
    settings = _settings(db_url, model_dir, write_config)
    with pytest.raises(ConfigError, match="MONITOR_UI_TOKEN"):
        create_ui_app(settings, engine, host="0.0.0.0")


@sqlite_only
def test_named_users_sign_in_with_their_own_token(db_url, engine, model_dir, write_config):
    settings = _settings(db_url, model_dir, write_config, env={"MONITOR_UI_USERS": "alice:tok1,bob:tok2"})
    assert "tok1" not in str(settings.masked())
    client = _sign_in(TestClient(create_ui_app(settings, engine, host="10.0.0.5")), "mallory", "tok2")
    assert "signed in as <b>bob</b>" in client.get("/ui/").text  # the token names the person


def test_parse_users_rejects_a_malformed_entry_without_showing_it():
    assert parse_users("alice:t1, bob:t2") == {"t1": "alice", "t2": "bob"}
    with pytest.raises(ConfigError) as err:
        parse_users("alice:t1,secretwithoutname")
    assert "secretwithoutname" not in str(err.value)


@sqlite_only
def test_feedback_needs_a_name_and_the_csrf_token(db_url, engine, model_dir, write_config, alert_row):
    settings = _settings(db_url, model_dir, write_config)
    client = TestClient(create_ui_app(settings, engine, host="127.0.0.1"))
    assert client.get("/ui/").status_code == 200  # looking needs no sign-in on localhost
    url = f"/ui/alerts/{alert_row}/feedback"
    assert client.post(url, data={"verdict": "acknowledge", "csrf": "x"}).status_code == 403  # no name
    _sign_in(client, "Ann Example")
    assert client.post(url, data={"verdict": "acknowledge"}).status_code == 403  # no CSRF token
    assert client.post(url, data={"verdict": "acknowledge", "csrf": "forged"}).status_code == 403
    page = client.get(f"/ui/alerts/{alert_row}")
    done = client.post(url, data={"verdict": "acknowledge", "csrf": _csrf(page.text)}, follow_redirects=False)
    assert done.status_code == 303
    with transaction(engine) as session:
        alert, history = alert_feedback(session, alert_row)
        assert [(f.user_name, f.verdict, f.source) for f in history] == [("Ann Example", "acknowledge", "ui")]
        assert alert.status == "acknowledged"


@sqlite_only
def test_read_only_hides_and_refuses_actions(db_url, engine, model_dir, write_config, alert_row):
    settings = _settings(db_url, model_dir, write_config, extra="[ui]\nread_only = true\n")
    client = _sign_in(TestClient(create_ui_app(settings, engine, host="127.0.0.1")), "Ann")
    page = client.get(f"/ui/alerts/{alert_row}")
    assert "read-only" in page.text and "name='verdict'" not in page.text
    refused = client.post(f"/ui/alerts/{alert_row}/feedback",
                          data={"verdict": "false_alarm", "csrf": _csrf(page.text)})
    assert refused.status_code == 403
    with transaction(engine) as session:
        assert alert_feedback(session, alert_row)[1] == []


@sqlite_only
def test_unknown_pages_answer_404_pages_not_500(db_url, engine, model_dir, write_config):
    client = TestClient(create_ui_app(_settings(db_url, model_dir, write_config), engine, host="127.0.0.1"))
    assert client.get("/ui/runs/999").status_code == 404
    assert client.get("/ui/alerts/999").status_code == 404
    assert client.get("/ui/models/nope").status_code == 404
    assert client.get("/ui/static/plotly.min.js").status_code == 200



def test_the_model_card_page_shows_the_latest_stored_card(db_url, engine, model_dir, write_config):
    from monitor import clock
    from monitor.card import build_card
    from monitor.store import transaction
    from monitor.store.cards import card_evidence, save_card

    settings = _settings(db_url, model_dir, write_config)
    client = TestClient(create_ui_app(settings, engine, host="127.0.0.1"))
    missing = client.get("/ui/cards/cancer")
    assert missing.status_code == 404 and "no model card yet" in missing.text
    with transaction(engine) as session:
        evidence = card_evidence(session, "cancer", 5)
        card = build_card(settings.model("cancer"), evidence, generated_at=clock.utcnow().isoformat())
        save_card(session, "cancer", card, run_id=None, now=clock.utcnow())
    shown = client.get("/ui/cards/cancer")
    assert shown.status_code == 200 and "Model card: cancer" in shown.text


@sqlite_only
def test_session_cookie_round_trip_and_expiry(db_url, model_dir, write_config, monkeypatch):
    settings = _settings(db_url, model_dir, write_config, env={"MONITOR_UI_TOKEN": "tok"})
    auth = Auth(settings, "0.0.0.0")
    session = auth.sign_in("Ann", "tok")
    assert auth.decode(auth.encode(session)) == session
    assert auth.sign_in("", "tok") is None  # no name, no session
    tampered = auth.encode(session).replace(".", "x.", 1)
    assert auth.decode(tampered) is None
    import time

    monkeypatch.setattr(time, "time", lambda: session.expires + 1)
    assert auth.decode(auth.encode(session)) is None


NON_ASCII_COOKIES = {
    "mac": "eyJuIjoiYSJ9.\u00e9\u00e9",
    "body": "\u00e9\u00e9.0000",
    "both": "\u00ff.\u00ff",
    "no-dot": "\u00e9\u00e9\u00e9",
}


@sqlite_only
@pytest.mark.parametrize("cookie", NON_ASCII_COOKIES.values(), ids=NON_ASCII_COOKIES.keys())
def test_a_non_ascii_session_cookie_is_no_session(db_url, engine, model_dir, write_config, cookie):
    """A forged cookie with bytes beyond ASCII signs nobody in and never answers 5xx."""
    settings = _settings(db_url, model_dir, write_config, env={"MONITOR_UI_TOKEN": "tok"})
    assert Auth(settings, "0.0.0.0").decode(cookie) is None
    client = TestClient(create_ui_app(settings, engine, host="0.0.0.0"), raise_server_exceptions=False)
    raw = f"monitor_ui={cookie}; monitor_ui_login={cookie}".encode()
    page = client.get("/ui/", headers={"cookie": raw}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    posted = client.post("/ui/logout", data={"csrf": cookie}, headers={"cookie": raw})
    assert posted.status_code == 403
    login = client.post("/ui/login", data={"csrf": cookie, "name": "x", "token": "tok"},
                        headers={"cookie": raw})
    assert login.status_code == 403
