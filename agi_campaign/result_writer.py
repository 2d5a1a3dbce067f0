"""Group commit: one thread applies the service's result writes, many to a transaction.

With a hundred FastAGI sessions each opening its own write transaction, SQLite serialises them
through its sleeping busy handler, and bench/ saw calls spend most of their life waiting there.
Here the sessions hand their write to one thread, which applies every write waiting in the queue
in one transaction (and, before it commits, those queued meanwhile: see _commit) and then wakes
the sessions (when more writes wait, just before the next batch's COMMIT: see _apply): a session
still returns only once its write is committed (so the dialplan's AstDB copy is deleted only
after the result is safe).

A write that raises a project error (AgiCampaignError: unknown attempt, forged token) fails
alone: those raise before writing anything. Any other error fails the batch; the writer then
asks its connection `SELECT 1`:

- it answers: the writes are at fault, and the batch is retried one write a transaction, so one
  bad write never takes the others with it;
- it does not (PostgreSQL restarted or failed over, a proxy killed the idle connection, the
  SQLite handle was closed): the connection is lost, not the writes. The writer drops it and
  reconnects, retrying with backoff (RETRY_FIRST_S doubling to RETRY_MAX_S) while the database
  cannot be reached, with one WARNING per outage; then it reruns the whole batch. Meanwhile the
  callers' writes stay queued and their futures pending: a caller gets its result only once a
  commit holding its write succeeded, never from a run that was rolled back.

A COMMIT whose connection died may have been applied or not (nobody can tell); rerunning it is
safe because every result write is conditional (agi_campaign.results: an ended attempt is not
changed again). A batch that loses its connection MAX_LOSSES times in a row (a write that kills
its own connection?) is treated as a failed batch.

`stop()` applies what is queued; while the database is down it keeps trying for stop_grace_s,
then fails the writes it still holds with StartupError (not recorded; recovery from AstDB
covers the calls at the next reconcile or start), so stopping takes bounded time.
"""
import concurrent.futures
import logging
import queue
import threading
import time

from agi_campaign.errors import AgiCampaignError, StartupError

log = logging.getLogger(__name__)

MAX_BATCH = 500
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
STOP_GRACE_S = 5.0
MAX_LOSSES = 5
CALL_TIMEOUT_S = 60  # how long `call` (and a caller waiting on `submit`) waits for a commit
_STOP = object()


class _GaveUp(Exception):
    """Internal: stop() was asked and the database stayed unreachable past the grace time."""


class BatchWriter:
    # Reconnection backoff and the grace stop() gives an unreachable database (tests shorten).
    retry_first_s = RETRY_FIRST_S
    retry_max_s = RETRY_MAX_S
    stop_grace_s = STOP_GRACE_S

    def __init__(self, database, max_batch=MAX_BATCH, metrics=None):
        self._db = database
        self._metrics = metrics  # agi_campaign.metrics.Metrics (commit latency), or None
        self._max_batch = max_batch
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._held = ()  # the batch being applied (stop() fails it if the thread is stuck)
        self._ready = []  # (future, outcome) committed, its caller not woken yet (_wake_ready)
        self._wake = threading.Event()  # cuts a backoff sleep short when stop() is asked
        self._stop_deadline = None
        self._gave_up = None  # the StartupError held writes fail with once stop() gave up
        self._outage = None  # (monotonic start, attempts) while the connection is lost
        self._stop_taken = False  # _extend took the _STOP marker: stop after this batch
        self.batches = 0
        self.writes = 0
        self.outages = 0

    def start(self):
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout=10):
        """Apply what is queued, then stop; bounded by `timeout` even with the database down."""
        thread = self._thread
        if thread is None:
            return
        self._stop_deadline = time.monotonic() + min(self.stop_grace_s, timeout / 2.0)
        self._queue.put(_STOP)
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():  # stuck in the database driver (a connect or query hanging)
            err = StartupError("the result writer did not stop within %s s (database driver "
                               "not answering); this write was not recorded" % timeout)
            log.error("%s", err)
            self._gave_up = err
            self._wake_ready()
            for _, future in self._held:
                _settle(future, (False, err))
            self._fail_queued(err)
            self._queue.put(_STOP)

    def call(self, fn, timeout=CALL_TIMEOUT_S):
        """Run `fn()` in the writer's transaction; return its result or raise its error.

        Returns only once the transaction holding the write is committed.
        """
        return self.submit(fn).result(timeout)

    @property
    def queue_depth(self):
        """Writes queued or in the transaction being applied (metrics)."""
        return self._queue.qsize() + len(self._held)

    def submit(self, fn):
        """Queue `fn()` for the writer's transaction; a Future of its result, resolved once
        committed. Writes are applied in the order submitted."""
        if self._thread is None or not self._thread.is_alive():
            raise StartupError("the result writer is not running")
        future = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future

    def _take(self):
        """The next batch: wait for one item, then take what is queued behind it."""
        first = self._queue.get()
        return [first] if first is _STOP else [first] + self._drain(self._max_batch - 1)

    def _drain(self, limit):
        """Up to `limit` items already queued, without waiting; a _STOP ends the list."""
        items = []
        while len(items) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            if item is _STOP:
                break
        return items

    def _run(self):
        """One connection for as long as it works (no pool checkout per batch)."""
        try:
            while True:
                batch = self._take()
                stop = batch[-1] is _STOP
                work = [item for item in batch if item is not _STOP]
                if work:
                    self._apply(work)
                if stop or self._stop_taken:
                    return
        finally:
            self._wake_ready()
            self._disconnect()
            self._fail_queued(StartupError("the result writer stopped before this write was "
                                           "applied; it was not recorded"))

    def _apply(self, work):
        """Commit `work`; its callers are woken now if nothing else is queued, else just
        before the next COMMIT (_wake_ready): woken at once, they would compete for the GIL
        with the writer running the next batch's statements (bench/: the writer, the one
        serial stage, then spent most of its time waiting for the GIL); woken before a
        COMMIT, they run during its fsync, when the writer needs no GIL."""
        self._held = work
        try:
            for future, outcome in self._outcomes(work):
                self._ready.append((future, outcome))
        except _GaveUp:
            self._wake_ready()
            for _, future in work:
                _settle(future, (False, self._gave_up))
        finally:
            self._held = ()
        if self._queue.empty():
            self._wake_ready()
        self.batches += 1
        self.writes += len(work)

    def _wake_ready(self):
        """Resolve the futures of the writes already committed."""
        ready, self._ready = self._ready, []
        for future, outcome in ready:
            _settle(future, outcome)

    def _outcomes(self, work):
        """(future, outcome) of each write once committed: the batch in one transaction, or,
        if that fails, one write a transaction (yielded as each commits), so one bad write
        never takes the others with it. _GaveUp passes through."""
        try:
            outcomes = self._commit(work, extend=True)
        except _GaveUp:
            raise
        except Exception:  # boundary: retry one by one so one bad write fails alone
            log.exception("result batch of %d failed; retrying one write a transaction",
                          len(work))
        else:
            yield from zip((future for _, future in work), outcomes)
            return
        for item in work:
            try:
                outcome = self._commit([item])[0]
            except _GaveUp:
                raise
            except Exception as err:  # boundary: reported to the waiting session
                outcome = (False, err)
            yield item[1], outcome

    def _commit(self, work, extend=False):
        """Run `work`'s writes in one transaction and commit; their outcomes once committed.
        With `extend`, writes queued while it ran join `work` (in place) before the COMMIT
        (_extend).

        A failed transaction on a lost connection is run again on a new one (it was rolled
        back); on a connection that still answers, or after MAX_LOSSES losses, its error is
        raised. Raises _GaveUp when stop() gave up on an unreachable database.
        """
        losses = 0
        while True:
            self._connect()
            try:
                began = time.monotonic()
                with self._db.atomic():
                    outcomes = [_attempt(fn) for fn, _ in work]
                    if extend:
                        outcomes += self._extend(work)
                    self._wake_ready()
                if self._metrics is not None:
                    self._metrics.batch_committed(time.monotonic() - began)
                return outcomes
            except Exception as err:
                self._wake_ready()  # committed before this failure: not held by a retry
                losses += 1
                if losses >= MAX_LOSSES or self._answers():
                    raise
                self._lost(err)

    def _extend(self, work):
        """Take the writes queued while `work` ran into the same transaction (appended to
        `work`, up to max_batch in all) and run them; their outcomes. They would otherwise wait
        for this COMMIT and then pay a BEGIN and COMMIT (its fsync) of their own: under load
        that fixed cost a batch is most of the writer's time (bench/, benchmark 5). A _STOP
        met here ends the writer after this batch."""
        outcomes = []
        while len(work) < self._max_batch and not self._stop_taken:
            items = self._drain(self._max_batch - len(work))
            if items and items[-1] is _STOP:
                self._stop_taken = True
                items.pop()
            if not items:
                break
            work.extend(items)
            outcomes += [_attempt(fn) for fn, _ in items]
        return outcomes

    def _answers(self):
        """True when the writer's connection still runs `SELECT 1` (so it is not lost)."""
        if self._db.is_closed():
            return False
        try:
            self._db.execute_sql("SELECT 1").fetchone()
        except Exception:  # boundary: any failure means the connection is unusable
            return False
        return True

    def _lost(self, err):
        """The connection is lost: drop it (never back to the pool); one WARNING an outage."""
        self._discard()
        if self._outage is None:
            self._outage = (time.monotonic(), 0)
            self.outages += 1
            log.warning("result writer lost its database connection (%s); holding %d result "
                        "write(s) and reconnecting (retry every %g s doubling to %g s)",
                        _one_line(err), len(self._held) + self._queue.qsize(),
                        self.retry_first_s, self.retry_max_s)

    def _connect(self):
        """Give the writer an open connection that answers, waiting with backoff meanwhile."""
        if self._gave_up is not None:
            raise _GaveUp()
        if not self._db.is_closed():
            return
        self._wake_ready()  # committed writes must not wait for a reconnection
        delay = self.retry_first_s
        while True:
            try:
                # Held like connection_context() (so a write's own nested connection_context()
                # leaves it open) until _discard or _disconnect closes it.
                self._db.connection_context().__enter__()
                self._db.execute_sql("SELECT 1").fetchone()
            except Exception as err:  # boundary: unreachable; retried below
                self._discard()
                self._lost(err)
                began, tries = self._outage
                self._outage = (began, tries + 1)
                wait = self._backoff_wait(delay, began, err)
                log.debug("database still unreachable after %.1f s (%s); next try in %.1f s",
                          time.monotonic() - began, _one_line(err), wait)
                if self._wake.wait(wait):
                    self._wake.clear()
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self._outage is not None:
                began, tries = self._outage
                self._outage = None
                log.info("result writer reconnected: database reachable again after %.1f s "
                         "(%d failed attempt(s)); applying the held result writes",
                         time.monotonic() - began, tries)
            return

    def _backoff_wait(self, delay, began, err):
        """The sleep before the next reconnection; raises _GaveUp once stop()'s grace is over."""
        deadline = self._stop_deadline
        if deadline is None:
            return delay
        left = deadline - time.monotonic()
        if left <= 0:
            self._gave_up = StartupError(
                "the result writer stopped while the database was unreachable for %.1f s (%s); "
                "this write was not recorded" % (time.monotonic() - began, _one_line(err)))
            log.error("%s", self._gave_up)
            raise _GaveUp()
        return min(self.retry_first_s, left)

    def _discard(self):
        """Close the writer's connection without returning it to the pool."""
        if self._db.is_closed():
            return
        try:
            manual_close = getattr(self._db, "manual_close", None)
            (manual_close or self._db.close)()
        except Exception:  # boundary: a broken connection may fail to close; it is dropped
            log.debug("closing the lost connection failed", exc_info=True)

    def _disconnect(self):
        try:
            if not self._db.is_closed():
                self._db.close()
        except Exception:  # boundary: stopping; the connection is dropped either way
            log.debug("closing the writer's connection failed", exc_info=True)

    def _fail_queued(self, err):
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _settle(item[1], (False, err))


def _attempt(fn):
    try:
        return True, fn()
    except AgiCampaignError as err:
        return False, err


def _settle(future, outcome):
    ok, value = outcome
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except concurrent.futures.InvalidStateError:
        pass  # stop() failed it already, having given up on a stuck writer thread


def _one_line(err):
    text = " ".join(str(err).split())
    return "%s: %s" % (type(err).__name__, text) if text else type(err).__name__
