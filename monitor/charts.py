"""Charts as PNG bytes (matplotlib, Agg backend): for Slack threads and the HTML report.

matplotlib is imported lazily and always with the Agg backend, so no display is needed
and importing this module costs nothing.
"""

from __future__ import annotations

import io
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


def drift_chart(features: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Per-feature drift score against its threshold (drifted in red); returns PNG bytes.

    `features` is `{name: {"score", "threshold", "drifted", "method"}}` as in the payload.
    """
    items = sorted(features.items(), key=lambda kv: (not kv[1].get("drifted"), kv[0]))[:MAX_BARS]
    names = [name for name, _ in items][::-1]
    scores = [float(f.get("score") or 0.0) for _, f in items][::-1]
    limits = [float(f.get("threshold") or 0.0) for _, f in items][::-1]
    colors = ["#d62728" if f.get("drifted") else "#1f77b4" for _, f in items][::-1]
    with _LOCK:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, _height(len(names))))
        ax.barh(names, scores, color=colors)
        ax.scatter(limits, names, marker="|", s=200, color="black", label="threshold")
        ax.set_xlabel("drift score")
        ax.set_title("Feature drift")
        if names:
            ax.legend(loc="lower right")
        return _png(fig)


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
