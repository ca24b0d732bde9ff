"""The one escaping helper and Evidently's page: values stay data wherever they land."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from monitor.ui.markup import e, href, link, script_hashes, script_json

PAYLOAD = "</script><script>window.__pwned=1</script>\u2028'\"&"


@pytest.mark.parametrize("target, expected", [
    ("/ui/alerts/3", "/ui/alerts/3"),
    ("/ui/why?model=m&request_id=a'b", "/ui/why?model=m&amp;request_id=a&#x27;b"),
    ("https://example.org/x", "https://example.org/x"),
    ("javascript:alert(1)", "#"),
    (" JavaScript:alert(1)", "#"),
    ("data:text/html,<script>", "#"),
    ("//evil.example/", "#"),
    ("/\\evil.example/", "#"),
    ("vbscript:x", "#"),
], ids=["path", "query", "https", "javascript", "javascript-spaced", "data", "protocol-relative",
        "backslash", "vbscript"])
def test_href_keeps_links_on_the_site_or_on_http(target, expected):
    assert href(target) == expected


def test_text_and_attributes_are_escaped_both_quotes_included():
    assert e(PAYLOAD) == ("&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;"
                          "\u2028&#x27;&quot;&amp;")
    assert e(None) == "" and e(0.123456) == "0.1235"
    assert link("javascript:alert(1)", "<b>") == "<a href='#'>&lt;b&gt;</a>"


def test_script_json_cannot_end_its_element_and_parses_back_to_the_same_value():
    value = {"text": PAYLOAD, "n": np.float64(1.5)}
    encoded = script_json(value)
    assert not re.search("[<>&\u2028\u2029]", encoded)
    assert json.loads(encoded) == {"text": PAYLOAD, "n": 1.5}


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_script_hashes_cover_inline_scripts_not_loaded_ones():
    page = "<script src='/x.js'></script><script>a()</script><SCRIPT type='x'>{}</SCRIPT><script>a()</script>"
    assert script_hashes(page) == [_sha("a()"), _sha("{}")]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for item in value for s in _strings(item)] if isinstance(value, list) else []


def test_evidently_page_keeps_a_hostile_category_inside_its_data():
    """Evidently 0.7 embeds category values in an inline script unescaped: the value must
    not end that script, and must come back unchanged when the data is parsed."""
    from monitor.drift import render_html

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=120), "c": rng.choice(["a", "b"], 120)})
    current = pd.DataFrame({"x": rng.normal(size=120), "c": rng.choice(["a", PAYLOAD], 120)})
    with np.errstate(all="ignore"):
        page = render_html(reference, current, numeric=["x"], categorical=["c"])
    assert "window.__pwned=1</script>" not in page
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.S)
    data = next(s for s in scripts if "var metric_" in s)
    values = re.findall(r" = ([^\n]*);\n", data)
    assert len(values) == 2
    assert PAYLOAD in {text for value in values for text in _strings(json.loads(value))}
    assert page.index("localStorage") < page.index("var metric_")  # the storage shim runs first
    assert len(script_hashes(page)) == 5  # shim, data, global, Evidently's library, draw call
