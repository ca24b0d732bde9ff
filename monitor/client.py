"""`PredictionLogger`: log predictions from serving code without slowing it down.

    from monitor.client import PredictionLogger

    logger = PredictionLogger("http://monitor:8765", model="diagnosis", token=TOKEN)
    logger.log({"age": 41, "plan": "pro"}, 0.83, request_id=request_id)
    ...
    logger.log_label(request_id, 1)          # whenever the truth is known

`log` only puts the row on a bounded queue; a background thread sends batches over
HTTP (or, given an engine and settings, writes them to the database). It never
raises into the serving path: when the queue is full, or the server stays
unreachable, rows are dropped, counted in `.dropped` and logged (rate-limited).
A batch the server refuses (4xx) is split until the refused row is alone, so one
poisoned row never costs its neighbours. `.sent`/`.quarantined` count predictions,
`.sent_labels`/`.quarantined_labels` labels.
Rows still queued are flushed at exit. Importing this module is cheap: the HTTP
client and the database code are imported by the background thread.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()
WARN_EVERY = 30.0
#: the longest in-place wait for a server's Retry-After (the queue keeps filling meanwhile)
MAX_RETRY_WAIT = 5.0


class _Refused(Exception):
    """A 4xx answer: the same body would be refused again."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class _ServerError(Exception):
    """A 5xx answer (e.g. 503 while the database is down): worth retrying."""

    def __init__(self, status: int, detail: str, retry_after: float | None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.retry_after = status, retry_after


def _encode(rows: list[dict[str, Any]]) -> bytes:
    """The batch as a JSON array (values JSON has no type for sent as their text). A row
    orjson cannot serialize (nested deeper than its 255 levels) is rendered as JSON
    without a depth limit: the server judges and quarantines it as it was logged."""
    import orjson

    try:
        return orjson.dumps(rows, default=str)
    except (TypeError, orjson.JSONEncodeError):
        pass
    from monitor.intake.rawtext import render_json

    return b"[" + b",".join(render_json(row, option=0).encode() for row in rows) + b"]"


def _error_text(response: Any) -> str:
    try:
        return str(response.json().get("error", ""))[:200]
    except Exception:  # noqa: BLE001 - not JSON: show the start of the text
        return response.text[:200]


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class PredictionLogger:
    """Non-blocking prediction (and label) logger with a bounded queue.

    Give `url` (the monitor's HTTP address) or `engine` and `settings` (write to the
    database directly, validated like HTTP rows). `model` is the default model name.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        model: str | None = None,
        token: str | None = None,
        engine: Any = None,
        settings: Any = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 5.0,
        retries: int = 2,
    ):
        if (url is None) == (engine is None):
            raise ValueError("give exactly one of url (HTTP) or engine (database)")
        if engine is not None and settings is None:
            raise ValueError("database mode needs settings (the models' schemas)")
        self.url = url.rstrip("/") if url else None
        self.model = model
        self._token = token
        self._engine, self._settings = engine, settings
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.timeout, self.retries = timeout, retries
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self.dropped = 0
        #: predictions the server stored / quarantined
        self.sent = 0
        self.quarantined = 0
        #: labels the server stored / quarantined (counted apart from predictions)
        self.sent_labels = 0
        self.quarantined_labels = 0
        self._last_warning = 0.0
        self._suppressed = 0
        self._closed = False
        self._http: Any = None
        self._thread = threading.Thread(target=self._run, name="monitor-logger", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the serving path: never raises, never blocks --------------------------------

    def log(
        self,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        request_id: str | None = None,
        model: str | None = None,
        timestamp: datetime | str | None = None,
        label: Any = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue one prediction; returns False when it was dropped.

        `attributes` are values that are not model inputs (``{"sex": "F"}``): those the
        model's `[models.segments] attributes` declares are stored for segments and
        fairness; they are never fed to the model."""
        try:
            if isinstance(timestamp, datetime):
                timestamp = timestamp.isoformat()
            row = {
                "model": model or self.model,
                "request_id": request_id or uuid.uuid4().hex,
                "timestamp": timestamp or datetime.now(UTC).isoformat(),
                "features": dict(features),
                "prediction": prediction,
            }
            if label is not None:
                row["label"] = label
            if attributes is not None:
                row["attributes"] = dict(attributes)
            return self._put(("predictions", row))
        except Exception:  # noqa: BLE001 - the serving path must never see our errors
            return self._drop(1, "could not queue a prediction", exc_info=True)

    def log_label(self, request_id: str, label: Any, *, model: str | None = None) -> bool:
        """Queue the true label of an earlier (or later) prediction; False when dropped."""
        try:
            row = {"model": model or self.model, "request_id": request_id, "label": label}
            return self._put(("labels", row))
        except Exception:  # noqa: BLE001
            return self._drop(1, "could not queue a label", exc_info=True)

    def _put(self, item: tuple[str, dict[str, Any]]) -> bool:
        if self._closed:
            return self._drop(1, "logger is closed")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return self._drop(1, f"queue full ({self._queue.maxsize} rows)")
        return True

    def _drop(self, count: int, why: str, exc_info: bool = False) -> bool:
        with self._lock:
            self.dropped += count
            now = time.monotonic()
            if now - self._last_warning < WARN_EVERY:
                self._suppressed += 1
                return False
            suppressed, self._suppressed, self._last_warning = self._suppressed, 0, now
        log.warning(
            "prediction logger dropped %d row(s): %s (%d dropped in total, %d similar "
            "warnings suppressed)",
            count,
            why,
            self.dropped,
            suppressed,
            exc_info=exc_info,
        )
        return False

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every row queued so far was sent (or dropped); False on timeout."""
        if not self._thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the background thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning(
                "prediction logger: queue still full at close; %d rows not sent",
                self._queue.qsize(),
            )
        self._thread.join(timeout)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread -------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: dict[str, list[dict[str, Any]]] = {"predictions": [], "labels": []}
            markers: list[_Flush] = []
            try:
                item = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    batch[item[0]].append(item[1])
                if stop or sum(map(len, batch.values())) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            for kind, rows in batch.items():
                if rows:
                    self._send(kind, rows, final=stop)
            for marker in markers:
                marker.done.set()
        if not self._queue.empty():
            self._drain()
        self._close_transport()

    def _drain(self) -> None:
        rows: dict[str, list[dict[str, Any]]] = {"predictions": [], "labels": []}
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Flush):
                item.done.set()
            elif item is not _STOP:
                rows[item[0]].append(item[1])
        for kind, batch in rows.items():
            if batch:
                self._send(kind, batch, final=True)

    def _send(self, kind: str, rows: list[dict[str, Any]], final: bool) -> None:
        """Deliver one batch. A 4xx answer is about the batch as a whole (the server
        quarantines bad rows one by one), so a refused batch is split in halves until
        the row it cannot take is alone: one poisoned row never drops its neighbours.
        Transport errors and 5xx are retried with backoff (Retry-After honoured, up to
        `MAX_RETRY_WAIT`), then the batch is dropped and counted."""
        attempts = 1 if final else 1 + self.retries
        for attempt in range(attempts):
            try:
                answer = self._deliver(kind, rows)
            except _Refused as err:
                if err.status in (401, 403, 404) or len(rows) == 1:
                    self._drop(len(rows), f"the server refused {kind}: {err}")
                    return
                half = len(rows) // 2
                self._send(kind, rows[:half], final)
                self._send(kind, rows[half:], final)
                return
            except Exception as err:  # noqa: BLE001 - the transport may fail in any way
                if attempt + 1 < attempts:
                    wait = getattr(err, "retry_after", None)
                    time.sleep(min(MAX_RETRY_WAIT, wait) if wait else 0.2 * 2**attempt)
                    continue
                self._drop(len(rows), f"cannot send {kind}: {type(err).__name__}: {err}")
                return
            with self._lock:
                if kind == "labels":
                    self.sent_labels += int(answer.get("accepted", 0))
                    self.quarantined_labels += int(answer.get("quarantined", 0))
                else:
                    self.sent += int(answer.get("accepted", 0))
                    self.quarantined += int(answer.get("quarantined", 0))
            return

    def _deliver(self, kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self._engine is not None:
            from monitor.intake.ingest import ingest_labels, ingest_predictions
            from monitor.intake.timebounds import TimePolicy

            models = self._settings.models
            pairs = [(row, None) for row in rows]
            if kind == "labels":
                return ingest_labels(self._engine, models, pairs, source="client").as_json()
            return ingest_predictions(self._engine, models, pairs, source="client",
                                      times=TimePolicy.from_settings(self._settings)).as_json()
        if self._http is None:
            import httpx

            headers = {"content-type": "application/json"}
            if self._token:
                headers["authorization"] = f"Bearer {self._token}"
            self._http = httpx.Client(
                base_url=self.url or "", timeout=self.timeout, headers=headers
            )
        response = self._http.post(f"/v1/{kind}", content=_encode(rows))
        if 400 <= response.status_code < 500:
            raise _Refused(response.status_code, _error_text(response))
        if response.status_code >= 500:
            raise _ServerError(response.status_code, _error_text(response),
                               _seconds(response.headers.get("retry-after")))
        return response.json()

    def _close_transport(self) -> None:
        if self._http is not None:
            try:
                self._http.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the HTTP client failed", exc_info=True)
