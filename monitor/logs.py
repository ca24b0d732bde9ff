"""Logging for the daemon and the CLI: text or JSON lines, secrets masked.

Every module logs through ``logging.getLogger(__name__)`` with %-style arguments;
`configure` installs one handler on the root logger with a filter that masks Slack
tokens, webhook URLs, bearer tokens, URL user-info and ``password=`` parameters in
every record. `mask_url` is the one masking function for URLs; config and the CLI use it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

#: user-info of a URL: ``scheme://user:password@host``. The password may hold ":",
#: "@" and spaces, so it runs to the last "@" of the line that a host name follows.
_USERINFO = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]*://)([^:/@\s]*)(:[^\n]*@|@)(?=[^@\s/:?#]+(?:[:/?#\s\"',;)]|$))"
)
#: ``password=...`` and friends: URL query parameters and libpq "key=value" strings
_SECRET_PARAM = re.compile(
    r"(?i)(\b(?:password|passwd|pwd|sslpassword|secret|client_secret|token|access_token"
    r"|api_key|apikey|auth|sig|signature)\s*=\s*)(?!\*\*\*)('[^']*'|\"[^\"]*\"|[^&\s#'\"]+)"
)
#: the same as a URL's query parameter: the value (spaces too) runs to the next "&",
#: "#", quote, ": " or the end of the line
_SECRET_PARAM_URL = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|sslpassword|secret|client_secret|token|access_token"
    r"|api_key|apikey|auth|sig|signature)=)(?!\*\*\*)(?:(?!: )[^&#'\"\n])*"
)
_PATTERNS = [
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]+"), "xox?-***"),
    (re.compile(r"xapp-[A-Za-z0-9-]+"), "xapp-***"),
    (re.compile(r"https://hooks\.slack\.com/[^\s\"']+"), "https://hooks.slack.com/***"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1***"),
    (_SECRET_PARAM, r"\1***"),
]
_extra_secrets: set[str] = set()


def _hide_userinfo(match: re.Match[str]) -> str:
    scheme, user, rest = match.groups()
    if scheme.lower().startswith(("http", "ws")):
        return f"{scheme}***@"  # a web URL's user-info is a credential whatever its shape
    if rest == "@":
        return match.group(0)  # a database user name without a password
    return f"{scheme}{user}:***@"


def mask_url(url: str) -> str:
    """`url` (a URL, or a text holding URLs) with every credential replaced by ***:
    the password of its user-info (any characters, "@" and spaces included), the whole
    user-info of a web URL, and ``password=``/``token=``-like query parameters.

    The one masking function: config check, db commands, errors and logs use it.
    """
    text = _USERINFO.sub(_hide_userinfo, url)
    text = _SECRET_PARAM_URL.sub(r"\1***", text)
    return _SECRET_PARAM.sub(r"\1***", text)

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def register_secret(value: str | None) -> None:
    """Mask this exact value in every log line from now on (e.g. the ingest token)."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def mask(text: str) -> str:
    """`text` with every known kind of secret replaced by ***."""
    text = mask_url(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _extra_secrets:
        text = text.replace(secret, "***")
    return text


class SecretFilter(logging.Filter):
    """Renders the message once, masked, so no handler can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not kill logging
            message = str(record.msg)
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:
            entry["traceback"] = record.exc_text
        elif record.exc_info:
            entry["traceback"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """Install the root handler. Safe to call again (replaces the previous one)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_monitor", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._monitor = True  # type: ignore[attr-defined]
    handler.addFilter(SecretFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # slack-sdk logs request bodies at DEBUG and Bolt logs unsigned bodies at INFO
    for noisy in ("slack_sdk", "slack_bolt", "urllib3", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # one line per HTTP request is noise at INFO (the client reports failures itself)
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("slack_bolt").setLevel(logging.WARNING)
    # the CLI reports what a migration did; Alembic's per-step lines are noise there
    logging.getLogger("alembic").setLevel(logging.WARNING)
