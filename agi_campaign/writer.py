"""Group commit: one thread applies the service's result writes, many to a transaction.

With a hundred FastAGI sessions each opening its own write transaction, SQLite serialises them
through its sleeping busy handler, and bench/ saw calls spend most of their life waiting there.
Here the sessions hand their write to one thread, which applies every write waiting in the queue
in one transaction and then wakes the sessions: a session still returns only once its write is
committed (so the dialplan's AstDB copy is deleted only after the result is safe).

A write that raises a project error (AgiCampaignError: unknown attempt, forged token) fails
alone: those raise before writing anything. Any other error fails the batch, which is then
retried one write a transaction, so one bad write never takes the others with it.
"""
import concurrent.futures
import logging
import queue
import threading

from agi_campaign.errors import AgiCampaignError, StartupError

log = logging.getLogger(__name__)

MAX_BATCH = 500
_STOP = object()


class BatchWriter:
    def __init__(self, database, max_batch=MAX_BATCH):
        self._db = database
        self._max_batch = max_batch
        self._queue = queue.SimpleQueue()
        self._thread = None
        self.batches = 0
        self.writes = 0

    def start(self):
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout=10):
        """Apply what is queued, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def call(self, fn, timeout=60):
        """Run `fn()` in the writer's transaction; return its result or raise its error."""
        if self._thread is None or not self._thread.is_alive():
            raise StartupError("the result writer is not running")
        future = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future.result(timeout)

    def _take(self):
        first = self._queue.get()
        batch = [first]
        while first is not _STOP and len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            if item is _STOP:
                break
        return batch

    def _run(self):
        """One connection for the writer's whole life (no pool checkout per batch)."""
        with self._db.connection_context():
            while True:
                batch = self._take()
                stop = batch[-1] is _STOP
                work = [item for item in batch if item is not _STOP]
                if work:
                    self._apply(work)
                if stop:
                    return

    def _apply(self, work):
        outcomes = []
        try:
            with self._db.atomic():
                for fn, _ in work:
                    outcomes.append(_attempt(fn))
        except Exception:  # boundary: retry one by one so one bad write fails alone
            log.exception("result batch of %d failed; retrying one write a transaction",
                          len(work))
            outcomes = [self._alone(fn) for fn, _ in work]
        self.batches += 1
        self.writes += len(work)
        for (_, future), (ok, value) in zip(work, outcomes):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _alone(self, fn):
        try:
            with self._db.atomic():
                return _attempt(fn)
        except Exception as err:  # boundary: reported to the waiting session
            return False, err


def _attempt(fn):
    try:
        return True, fn()
    except AgiCampaignError as err:
        return False, err
