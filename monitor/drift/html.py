"""Evidently's own interactive drift report for one window, on demand, its data escaped.

Evidently 0.7 writes the report's data as `var metric_<id> = <JSON>;` in an inline
script, with `<` left as is: a category value such as `</script><script>...` would end
that script and run as the page's own. `render_html` re-escapes exactly that data block
and puts an in-memory storage first, so the page also works in an opaque-origin sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from monitor.errors import DriftError

#: Evidently's data block (legacy/utils/dashboard.py `file_html_template`): json.dumps
#: writes no raw newline, so each JSON value is exactly the rest of its line
_DATA_BLOCK = re.compile(
    r"(<script>\n    var (metric_[0-9a-f]{32}) = )([^\n]*)(;\n    var additional_graphs_\2 = )([^\n]*)"
    r"(;\n</script>)"
)
_HEAD = '<meta charset="UTF-8">'


def render_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    drift_share: float = 0.5,
) -> str:
    """The HTML page of ``Report([DataDriftPreset()])`` for `current` against `reference`.

    Only the named columns are compared, typed as given. This runs Evidently's full
    report (seconds on large frames): meant for a person asking for it, not for the
    scheduled runs. Raises DriftError when a column is missing or the report fails.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [*numeric, *categorical]
    if not names:
        raise DriftError("render_html needs at least one numeric or categorical column")
    for what, frame in (("reference", reference), ("window", current)):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DriftError(f"the {what} has no column {', '.join(map(repr, missing))}")
    definition = DataDefinition(
        numerical_columns=list(numeric), categorical_columns=list(categorical)
    )
    try:
        snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
            Dataset.from_pandas(current[names], data_definition=definition),
            Dataset.from_pandas(reference[names], data_definition=definition),
        )
        page = snapshot.get_html_str(as_iframe=False)
    except (ValueError, TypeError, KeyError) as err:
        raise DriftError(f"Evidently could not build the drift report: {err}") from err
    return _escaped(page)


def _escaped(page: str) -> str:
    """Evidently's page with its data block's JSON escaped for a script element and the
    storage shim first in <head>; DriftError when the page is not laid out as expected
    (a new Evidently: refuse rather than serve the data unescaped)."""
    from evidently import __version__ as evidently_version

    from monitor.ui.markup import STORAGE_SHIM, escape_script_json

    blocks = list(_DATA_BLOCK.finditer(page))
    if len(blocks) != 1 or page.count(_HEAD) != 1:
        raise DriftError(
            f"Evidently {evidently_version} lays its report out differently than expected ({len(blocks)} "
            "data blocks found, 1 expected): the report is not shown rather than shown with its data "
            "unescaped; pin evidently to 0.7.x or update monitor/drift/html.py"
        )
    m = blocks[0]
    data = (m.group(1) + escape_script_json(m.group(3)) + m.group(4) + escape_script_json(m.group(5))
            + m.group(6))
    page = page[:m.start()] + data + page[m.end():]
    return page.replace(_HEAD, f"{_HEAD}<script>{STORAGE_SHIM}</script>", 1)
