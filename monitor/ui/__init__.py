"""The dashboard: overview, model timelines, runs, alerts with feedback, why and what-if.

`mount_ui(app, settings, engine)` adds the /ui/ routes to the daemon's FastAPI app;
`create_ui_app(settings, engine, host)` serves them alone (`monitor ui`).
"""

from monitor.ui.app import create_ui_app, mount_ui

__all__ = ["create_ui_app", "mount_ui"]
