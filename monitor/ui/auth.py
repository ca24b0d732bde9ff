"""Who is using the dashboard: sign-in, the signed session cookie, CSRF tokens.

- On localhost without tokens anyone may look; acting (feedback) still needs a name,
  given on the sign-in page.
- Beyond localhost (`server.host` not loopback) every page needs a session: sign in
  with `MONITOR_UI_TOKEN` (one shared token, the person types a name) or as a named
  user of `MONITOR_UI_USERS` ("alice:tok1,bob:tok2").
- The session is a cookie signed with HMAC-SHA256 by a key made at start-up
  (HttpOnly, SameSite=Strict): restarting the server signs everyone out.
- Every POST carries the session's CSRF token in a form field, compared server-side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

from monitor.config import Settings
from monitor.errors import ConfigError

COOKIE = "monitor_ui"
#: double-submit cookie that protects the sign-in form itself
LOGIN_COOKIE = "monitor_ui_login"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_NAME = 64


@dataclass(frozen=True)
class Session:
    """A signed-in person: their name and the CSRF token of their forms."""

    name: str
    csrf: str
    expires: float
    #: "user" (own token), "token" (shared token) or "local" (name only, on localhost)
    how: str


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def parse_users(spec: str) -> dict[str, str]:
    """`"alice:tok1,bob:tok2"` -> {token: name}; a malformed entry is a ConfigError
    (that never shows the tokens)."""
    users: dict[str, str] = {}
    for i, entry in enumerate(p.strip() for p in spec.split(",")):
        if not entry:
            continue
        name, sep, token = entry.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ConfigError([f"MONITOR_UI_USERS: entry {i + 1} is not 'name:token' (value masked)"])
        users[token.strip()] = name.strip()
    return users


class Auth:
    """Sign-in rules of one server, from the settings and the host it listens on."""

    def __init__(self, settings: Settings, host: str | None = None):
        self.host = host or settings.server.host
        secret = settings.secrets
        self.shared = secret.ui_token.get_secret_value() if secret.ui_token else None
        self.users = parse_users(secret.ui_users.get_secret_value()) if secret.ui_users else {}
        self.local = is_loopback(self.host)
        self.read_only = settings.ui.read_only
        self.lifetime = settings.ui.session_hours * 3600
        self._key = secrets.token_bytes(32)

    @property
    def tokens_configured(self) -> bool:
        return bool(self.shared or self.users)

    @property
    def sign_in_required(self) -> bool:
        """True when looking at pages needs a session (beyond localhost, or tokens set)."""
        return not self.local or self.tokens_configured

    def check_usable(self) -> None:
        """A ConfigError when the UI would listen beyond localhost with no way to sign in."""
        if not self.local and not self.tokens_configured:
            raise ConfigError([
                f"server.host: {self.host!r} serves the dashboard beyond localhost: set "
                "MONITOR_UI_TOKEN or MONITOR_UI_USERS ('name:token,...') so people sign in"
            ])

    # -- signing in ------------------------------------------------------------------

    def sign_in(self, name: str, token: str) -> Session | None:
        """A new session for a correct token (named user, or shared token + a name);
        on localhost without tokens a name alone. None when refused."""
        name = " ".join(name.split())[:MAX_NAME]
        if self.users:
            for known, user in self.users.items():
                if token and hmac.compare_digest(token.encode(), known.encode()):
                    return self._new(user, "user")
        if self.shared and token and hmac.compare_digest(token.encode(), self.shared.encode()):
            return self._new(name, "token") if name else None
        if not self.tokens_configured and self.local and name:
            return self._new(name, "local")
        return None

    def _new(self, name: str, how: str) -> Session:
        return Session(name, secrets.token_urlsafe(24), time.time() + self.lifetime, how)

    # -- the cookie ------------------------------------------------------------------

    def encode(self, session: Session) -> str:
        body = base64.urlsafe_b64encode(orjson.dumps(
            {"n": session.name, "c": session.csrf, "e": session.expires, "h": session.how}
        )).decode()
        return f"{body}.{self._sign(body)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session of a valid, unexpired cookie signed by this server, else None."""
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        # bytes, not str: compare_digest refuses a str beyond ASCII (a forged cookie)
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), self._sign(body).encode()):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(body.encode()))
            session = Session(str(data["n"]), str(data["c"]), float(data["e"]), str(data["h"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() and session.name else None

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def login_nonce(self) -> str:
        return secrets.token_urlsafe(16)


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time equality of two CSRF tokens (False when either is missing)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
