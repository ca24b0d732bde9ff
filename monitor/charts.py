"""Charts as PNG bytes (matplotlib, Agg backend): for Slack threads and the HTML report.

matplotlib is imported lazily and always with the Agg backend, so no display is needed
and importing this module costs nothing.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

# pyplot keeps global state; two threads drawing at once corrupt each other's figures
_LOCK = threading.Lock()
MAX_BARS = 15


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()


def _height(n: int) -> float:
    return max(2.0, 0.35 * n + 1.2)


def is_p_value(feature: Mapping[str, Any]) -> bool:
    """True when a LOW score means drift (a p-value test), from the stored verdict."""
    if "p_value_test" in feature:
        return bool(feature["p_value_test"])
    from monitor.drift.stattests import P_VALUE_METHODS

    return str(feature.get("method") or "") in P_VALUE_METHODS


def drift_strength(score: Any, threshold: Any, p_value: bool) -> float | None:
    """A drift score on one scale for every test: 1.0 is the threshold, more is drift.

    Distances: ``score / threshold``. p-values: ``-log10(p) / -log10(threshold)``, so a
    p-value far below its threshold gives a LONG bar (p is floored at 1e-300). None
    when the score is missing or the threshold cannot scale it.
    """
    try:
        s, t = float(score), float(threshold)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(s) and math.isfinite(t)):
        return None
    if p_value:
        if not 0.0 < t < 1.0:
            return None
        return -math.log10(max(s, 1e-300)) / -math.log10(t)
    if t <= 0.0:
        return None
    return s / t


def drift_chart(features: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Per-feature drift strength against its threshold (drifted in red); PNG bytes.

    `features` is `{name: {"score", "threshold", "drifted", "method", "p_value_test"}}`
    as in the payload. Each bar is `drift_strength` (score / threshold, or
    -log10(p) / -log10(threshold) for p-value tests): the dashed line at 1 is the
    threshold, and a drifted feature has the longer bar.
    """
    items = sorted(features.items(), key=lambda kv: (not kv[1].get("drifted"), kv[0]))[:MAX_BARS]
    names = [name for name, _ in items][::-1]
    strengths = [
        drift_strength(f.get("score"), f.get("threshold"), is_p_value(f)) for _, f in items
    ][::-1]
    values = [0.0 if v is None else v for v in strengths]
    colors = ["#d62728" if f.get("drifted") else "#1f77b4" for _, f in items][::-1]
    labels = [
        f"{f.get('method')} {'p' if is_p_value(f) else 'score'}={_num(f.get('score'))}"
        for _, f in items
    ][::-1]
    with _LOCK:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, _height(len(names))))
        bars = ax.barh(names, values, color=colors)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="threshold")
        for bar, label in zip(bars, labels, strict=True):
            ax.annotate(label, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
        ax.set_xlabel("drift strength (score / threshold; p-values: log10 p / log10 threshold)")
        ax.set_title("Feature drift: longer bar = more drift; beyond the line = drifted")
        ax.set_xlim(0, max([1.3, *values]) * 1.35)
        if names:
            ax.legend(loc="lower right")
        return _png(fig)


def _num(value: Any) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return "n/a"


def importance_chart(features: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Baseline vs current global importance per feature; returns PNG bytes.

    `features` is `{name: {"baseline", "current", "change"}}` (the attribution payload).
    """
    items = sorted(
        features.items(),
        key=lambda kv: (
            -max(abs(float(kv[1].get("baseline") or 0)), abs(float(kv[1].get("current") or 0)))
        ),
    )
    items = items[:MAX_BARS][::-1]
    names = [n for n, _ in items]
    base = [float(f.get("baseline") or 0.0) for _, f in items]
    cur = [float(f.get("current") or 0.0) for _, f in items]
    with _LOCK:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, _height(len(names))))
        pos = range(len(names))
        ax.barh([p + 0.2 for p in pos], base, height=0.4, label="baseline", color="#7f7f7f")
        ax.barh([p - 0.2 for p in pos], cur, height=0.4, label="current", color="#ff7f0e")
        ax.set_yticks(list(pos), names)
        ax.set_xlabel("mean |attribution|")
        ax.set_title("Feature importance: baseline vs current")
        ax.legend(loc="lower right")
        return _png(fig)


def contributions_chart(
    contributions: Sequence[Sequence[Any]], output: float, baseline_output: float | None
) -> bytes:
    """One request's feature contributions (a waterfall-like bar chart); returns PNG bytes.

    `contributions` is `[[feature, value, input], ...]`, largest |value| first.
    """
    rows = list(contributions)[:MAX_BARS][::-1]
    labels = [
        f"{r[0]} = {r[2]:.3g}" if isinstance(r[2], float) else f"{r[0]} = {r[2]}" for r in rows
    ]
    values = [float(r[1]) for r in rows]
    with _LOCK:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, _height(len(rows))))
        ax.barh(labels, values, color=["#2ca02c" if v > 0 else "#d62728" for v in values])
        ax.axvline(0, color="black", linewidth=0.8)
        start = "?" if baseline_output is None else f"{baseline_output:.3g}"
        ax.set_title(f"Contributions: baseline {start} → output {output:.3g}")
        ax.set_xlabel("contribution to the output")
        return _png(fig)


def alert_chart(payload: Mapping[str, Any]) -> bytes | None:
    """The chart that best shows an alert (outbox payload): importance shift for
    attribution drift, else drift scores; None when the payload has nothing to draw."""
    kind = (payload.get("alert") or {}).get("kind")
    attribution = payload.get("attribution") or {}
    features = (payload.get("drift") or {}).get("features") or {}
    if kind == "attribution_drift" and attribution.get("features"):
        return importance_chart(attribution["features"])
    if features:
        return drift_chart(features)
    if attribution.get("features"):
        return importance_chart(attribution["features"])
    return None
