"""Group commit: concurrent HTTP batches stored in one transaction.

A small batch costs mostly its transaction (round trips and the commit's WAL flush),
not its rows. `GroupCommit.store` hands a checked batch to whichever request thread is
writing: while one transaction commits, the batches that arrive queue up, and the next
transaction takes all of them. No thread waits for a timer: a lone request is stored at
once, and the busier the server, the more batches share a commit.

Every batch gets its own answer, exactly as if it had been stored alone: the rows of its
own that were new, its duplicates (a request id logged before, or sent earlier in the
same group, counts as `duplicate` for the later one), its quarantined rows. A group the
database refuses for one batch's content is stored again batch by batch (each with the
row-by-row fallback of `ingest._store_predictions`); a database that is down fails every
batch of the group, which answers 503, nothing stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from monitor.intake.prepare import Prepared
from monitor.intake.records import IngestResult
from monitor.store import predictions as store
from monitor.store import transaction

log = logging.getLogger(__name__)

#: rows one shared transaction takes at most (more wait for the next one)
MAX_GROUP_ROWS = 20_000
#: a batch this large is stored in its own transaction, concurrently with others: its
#: commit is a small part of its cost, and two COPYs overlap better than one after another
ALONE_FROM = 500


@dataclass
class _Batch:
    checked: Prepared
    #: set once: when the batch is stored (or failed), or when its thread is to write next
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    finished: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


class GroupCommit:
    """Stores checked prediction batches from many threads, several per transaction.

    One thread writes at a time, its own batch and every batch queued behind it; then
    the oldest batch still queued (if any) wakes to write the next group, so no thread
    stores others' batches for longer than one transaction.
    """

    def __init__(
        self,
        engine: Engine,
        source: str,
        *,
        alone: Callable[[Engine, Prepared, str], IngestResult],
        result: Callable[[int, tuple, int, int], IngestResult],
        row_errors: tuple[type[BaseException], ...],
        unavailable: Callable[[BaseException], bool],
        max_rows: int = MAX_GROUP_ROWS,
    ):
        self.engine, self.source, self.max_rows = engine, source, max_rows
        self.alone_from = ALONE_FROM
        self._alone, self._result = alone, result
        self._row_errors, self._unavailable = row_errors, unavailable
        self._lock = threading.Lock()
        self._queue: list[_Batch] = []
        self._writing = False
        #: transactions and batches stored (for tests and the log)
        self.groups = self.batches = 0

    def store(self, checked: Prepared) -> IngestResult:
        """Store one checked batch (with others that are waiting); its own answer."""
        if len(checked.rows) >= self.alone_from:
            return self._alone(self.engine, checked, self.source)
        mine = _Batch(checked)
        with self._lock:
            self._queue.append(mine)
            if not self._writing:
                self._writing = mine.lead = True
        while not mine.finished:
            if mine.lead:
                mine.lead = False
                self._write_next()
                continue
            mine.wake.wait()
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _write_next(self) -> None:
        """Store the queued group (the writer's own batch first), then hand over."""
        with self._lock:
            group = self._take()
        try:
            self._write(group)
        except BaseException as err:  # every batch of the group hears of it
            for batch in group:
                if batch.result is None and batch.error is None:
                    batch.error = err
        finally:
            for batch in group:
                batch.finished = True
                batch.wake.set()
            with self._lock:
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.wake.set()
                else:
                    self._writing = False

    def _take(self) -> list[_Batch]:
        """Queued batches, oldest first, up to `max_rows` rows (at least one batch)."""
        taken, rows = [], 0
        while self._queue and (not taken or rows + len(self._queue[0].checked.rows) <= self.max_rows):
            batch = self._queue.pop(0)
            taken.append(batch)
            rows += len(batch.checked.rows)
        return taken

    def _write(self, group: list[_Batch]) -> None:
        if len(group) == 1:
            group[0].result = self._alone(self.engine, group[0].checked, self.source)
            self.groups, self.batches = self.groups + 1, self.batches + 1
            return
        try:
            new = self._shared(group)
        except self._row_errors as err:
            if not self._unavailable(err):
                log.warning("a group of %d batches failed to store (%s); storing each alone",
                            len(group), type(err).__name__)
                for batch in group:
                    try:
                        batch.result = self._alone(self.engine, batch.checked, self.source)
                    except BaseException as own:
                        batch.error = own
                return
            log.info("the database connection was lost (%s); retrying the group once",
                     type(err).__name__)
            new = self._shared(group)
        self.groups, self.batches = self.groups + 1, self.batches + len(group)
        for batch, inserted in zip(group, new, strict=True):
            checked = batch.checked
            batch.result = self._result(len(checked.rows), checked.rejected, checked.duplicates, inserted)

    def _shared(self, group: list[_Batch]) -> list[int]:
        """One transaction for the group; each batch's new rows (the first sender of a
        request id keeps it, as if the batches had come one after the other)."""
        rows = [row for batch in group for row in batch.checked.rows]
        with transaction(self.engine) as session:
            stored = store.log_rows(session, rows)
            for batch in group:  # in order: a later label for the same id corrects the first
                store.insert_labels(session, batch.checked.labels)
            store.quarantine_rows(session, [r for b in group for r in b.checked.rejected],
                                  source=self.source)
        if stored is None:  # every row was new
            return [len(batch.checked.rows) for batch in group]
        counts = []
        for batch in group:
            count = 0
            for row in batch.checked.rows:
                key = (row[0], row[1])
                if key in stored:
                    stored.discard(key)
                    count += 1
            counts.append(count)
        return counts
