"""Find one request by id in a model's source, for `monitor why` on unsampled requests.

The prediction log answers from the database; a `files` or `sql` source is read with the
same readers the runs use (streamed, memory bounded), over all time, until the request
id turns up. A scan of the source, meant for a person asking about one request.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from sqlalchemy import Engine

from monitor.config import ModelConfig
from monitor.errors import IntakeError
from monitor.intake.records import PredictionRecord
from monitor.intake.sources import source_for
from monitor.intake.validate import Invalid, Validator

log = logging.getLogger(__name__)

#: the window a lookup reads: all of time the sources can hold
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def find_request(model_cfg: ModelConfig, engine: Engine, request_id: str) -> PredictionRecord | None:
    """The validated record of `request_id` in the model's source, or None when absent.

    Raises IntakeError when the row is there but invalid (it would be quarantined), or
    when the source cannot be read.
    """
    if model_cfg.source == "log":
        return _from_log(model_cfg, engine, request_id)
    rows = source_for(model_cfg, engine).rows(EARLIEST, LATEST)
    validator = Validator(model_cfg)
    scanned = 0
    for obj, _raw in rows:
        scanned += 1
        if not isinstance(obj, dict) or str(obj.get("request_id")) != request_id:
            continue
        try:
            record = validator.check(obj)
        except Invalid as bad:
            raise IntakeError(
                f"request {request_id!r} is in the {model_cfg.source} source of model "
                f"{model_cfg.name} but invalid ({bad.reason}: {bad.detail}); runs quarantine it"
            ) from bad
        log.info("request %s found in the %s source after %d rows", request_id, model_cfg.source, scanned)
        return record
    log.info("request %s not in the %s source (%d rows read)", request_id, model_cfg.source, scanned)
    return None


def _from_log(model_cfg: ModelConfig, engine: Engine, request_id: str) -> PredictionRecord | None:
    from monitor.store import transaction
    from monitor.store.runs import find_prediction

    with transaction(engine) as session:
        row = find_prediction(session, model_cfg.name, request_id)
        if row is None:
            return None
        features, prediction, ts = dict(row.features), row.prediction, row.ts
        attributes = dict(row.attributes) if getattr(row, "attributes", None) else None
    # stored rows were validated at ingest; should that fail now, keep the value as stored
    with contextlib.suppress(Invalid):
        prediction = Validator(model_cfg).check_prediction(prediction)
    return PredictionRecord(model_cfg.name, request_id, ts, features, prediction, attributes=attributes)
