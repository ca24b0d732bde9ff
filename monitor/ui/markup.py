"""Treating data as data in HTML: the one escaping helper of the dashboard, `monitor report`
and the model card, safe link targets, JSON for inline script, and Content-Security-Policy.

Every value that reaches a page goes through `e` (text and quoted attribute values alike:
quotes are escaped too), `href` (a link target: relative to the site or http(s), never
`javascript:`), or `script_json` (JSON that cannot end its `<script>` element). The
policies forbid inline script; a self-contained file allows its own scripts by hash.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson

#: JSON characters that would let a string end its script element (or, U+2028/9, a JS
#: line in old engines) written as their JSON escapes: the parsed value is unchanged
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")
#: an inline script element (not one with a src): its text is what a hash covers
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.S | re.I)

#: the dashboard's policy: no inline script, no plugins, no foreign base, forms and
#: frames only to itself. Plotly draws with inline styles (style attributes and <style>)
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'; frame-src 'self'"
)

#: a page in memory shared by an opaque-origin document: Evidently's script reads
#: localStorage, which throws a SecurityError in a sandbox without allow-same-origin
STORAGE_SHIM = (
    "(function(){function mem(){var d=new Map();return{get length(){return d.size},"
    "key:function(i){var k=Array.from(d.keys())[i];return k===undefined?null:k},"
    "getItem:function(k){k=String(k);return d.has(k)?d.get(k):null},"
    "setItem:function(k,v){d.set(String(k),String(v))},removeItem:function(k){d.delete(String(k))},"
    "clear:function(){d.clear()}}}"
    "['localStorage','sessionStorage'].forEach(function(n){try{window[n].getItem('')}catch(err){"
    "Object.defineProperty(window,n,{value:mem(),configurable:true})}})})();"
)


def e(value: Any) -> str:
    """A value as escaped text, also safe inside a quoted attribute (floats to 4
    significant digits, None as empty)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value), quote=True)


def href(target: str) -> str:
    """`target` as an escaped link target: a path of this site or an http(s) URL; anything
    else (`javascript:`, `data:`, `//host`) becomes '#'."""
    text = str(target).strip()
    parts = urlsplit(text)
    local = text.startswith(("/", "?", "#")) and not text.startswith(("//", "/\\"))
    if (local and not parts.scheme) or (parts.scheme in ("http", "https") and parts.netloc):
        return e(text)
    return "#"


def link(target: str, text: Any) -> str:
    """An `<a>` to `target` (checked by `href`) showing `text` (escaped)."""
    return f"<a href='{href(target)}'>{e(text)}</a>"


def script_json(value: Any) -> str:
    """`value` as JSON that can sit inside a `<script>` element: `<`, `>`, `&`, U+2028 and
    U+2029 are written as JSON escapes, so no string in it can close the element."""
    return escape_script_json(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def escape_script_json(text: str) -> str:
    """JSON text made safe inside a `<script>` element (same value once parsed). The
    characters only occur inside JSON strings, where their \\u escapes mean the same."""
    return _SCRIPT_UNSAFE_RE.sub(lambda m: _SCRIPT_UNSAFE[m.group()], text)


def script_hashes(document: str) -> list[str]:
    """CSP sources ('sha256-...') of every inline script of `document`, in order, unique."""
    found = dict.fromkeys(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(document)
    )
    return list(found)


def file_csp(scripts: Iterable[str] = ()) -> str:
    """The policy of a self-contained HTML file: nothing loaded from anywhere, inline
    styles and data: images and fonts, and only the scripts whose hashes are listed."""
    allowed = " ".join(scripts) or "'none'"
    return (f"default-src 'none'; script-src {allowed}; style-src 'unsafe-inline'; img-src data:; "
            "font-src data:; base-uri 'none'; form-action 'none'")


def csp_meta(policy: str) -> str:
    """A `<meta>` carrying `policy` (for files opened from disk: no response headers)."""
    return f"<meta http-equiv='Content-Security-Policy' content=\"{e(policy)}\">"


def sandboxed_csp(scripts: Iterable[str]) -> str:
    """The response policy of a third-party page served alone: an opaque-origin sandbox
    (scripts run, but cannot reach the dashboard's origin, cookies or storage), its own
    inline scripts by hash, no network, no forms, framed only by the dashboard."""
    return f"sandbox allow-scripts; {file_csp(scripts)}; connect-src 'none'; frame-ancestors 'self'"
