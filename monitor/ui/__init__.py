"""The dashboard: overview, model timelines, runs, alerts with feedback, why and what-if.

`mount_ui(app, settings, engine)` adds the /ui/ routes to the daemon's FastAPI app;
`create_ui_app(settings, engine, host)` serves them alone (`monitor ui`). Both are
imported on first use, so `monitor.ui.markup` (used by the report and the card) does not
pull in FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.ui.app import create_ui_app, mount_ui

__all__ = ["create_ui_app", "mount_ui"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from monitor.ui import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
