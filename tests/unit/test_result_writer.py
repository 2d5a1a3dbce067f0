import logging
import os
import sqlite3
import threading
import time

import peewee
import pytest

from agi_campaign.clock import to_db
from agi_campaign.db import is_postgres
from agi_campaign.errors import NotFoundError, StartupError
from agi_campaign.models import DncEntry
from agi_campaign.result_writer import BatchWriter

from tests.unit.support import T0, pg_admin_execute


def add(phone):
    def write():
        DncEntry.create(list_name="l", phone=phone, added_at=to_db(T0))
        return phone
    return write


def fast_writer(db):
    """A started writer that retries every 50-200 ms (not 0.5-30 s) while the database is down."""
    writer = BatchWriter(db)
    writer.retry_first_s, writer.retry_max_s, writer.stop_grace_s = 0.05, 0.2, 1.0
    writer.start()
    return writer


class Caller(threading.Thread):
    """`writer.call(fn)` in a thread of its own, as a FastAGI session makes it."""

    def __init__(self, writer, fn, timeout=60):
        super().__init__(daemon=True)
        self.writer, self.fn, self.timeout = writer, fn, timeout
        self.result = self.error = None
        self.returned = threading.Event()

    def run(self):
        try:
            self.result = self.writer.call(self.fn, timeout=self.timeout)
        except Exception as err:  # checked by the test
            self.error = err
        self.returned.set()


def wait_queued(writer, n, timeout=10):
    """Until `n` writes wait in the writer's queue (the writer is held by an earlier write)."""
    deadline = time.monotonic() + timeout
    while writer._queue.qsize() < n:
        assert time.monotonic() < deadline, "writes never reached the writer's queue"
        time.sleep(0.005)


class DatabaseFaults:
    """Breaks the test database under the writer, on SQLite and on PostgreSQL alike.

    `kill()` closes (SQLite) or terminates (PostgreSQL, pg_terminate_backend) every
    connection to it, the writer's included; `down()` also makes new connections fail
    (SQLite: its folder is renamed away; PostgreSQL: ALLOW_CONNECTIONS false) until `up()`.
    """

    def __init__(self, db):
        self.db = db
        self.pg = is_postgres(db)
        self.is_down = False

    def kill(self):
        if not self.db.is_closed():  # this thread's own connection goes back to the pool first
            self.db.close()
        if self.pg:
            rows = pg_admin_execute("SELECT pg_terminate_backend(pid, 5000) FROM "
                                    "pg_stat_activity WHERE datname = %s AND "
                                    "pid <> pg_backend_pid()", (self.db.database,))
            return len(rows)
        with self.db._pool_lock:
            conns = [pc.connection for pc in self.db._in_use.values()]
            conns += [conn for _, _, conn in self.db._connections]
        for conn in conns:
            conn.close()
        return len(conns)

    def down(self):
        if self.pg:
            pg_admin_execute('ALTER DATABASE "%s" ALLOW_CONNECTIONS false' % self.db.database)
        else:
            folder = os.path.dirname(self.db.database)
            os.rename(folder, folder + "-away")
        self.is_down = True
        self.kill()

    def up(self):
        if not self.is_down:
            return
        if self.pg:
            pg_admin_execute('ALTER DATABASE "%s" ALLOW_CONNECTIONS true' % self.db.database)
        else:
            folder = os.path.dirname(self.db.database)
            os.rename(folder + "-away", folder)
        self.is_down = False

    def committed_phones(self):
        """The phones committed in DncEntry, read on a connection of our own."""
        if self.pg:
            import psycopg2
            params = self.db.connect_params
            conn = psycopg2.connect(host=params["host"], port=params["port"],
                                    user=params["user"], password=params["password"],
                                    dbname=self.db.database)
        else:
            conn = sqlite3.connect(self.db.database)
        try:
            cur = conn.cursor()
            cur.execute("SELECT phone FROM %s ORDER BY phone" % DncEntry._meta.table_name)
            return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()


@pytest.fixture
def faults(db):
    f = DatabaseFaults(db)
    yield f
    f.up()


def test_writer_groups_concurrent_writes_and_returns_results(db):
    writer = BatchWriter(db)
    writer.start()
    out, errors = [], []

    def worker(i):
        try:
            out.append(writer.call(add("+1202%07d" % i)))
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    writer.stop()
    assert errors == [] and len(out) == 200
    assert DncEntry.select().count() == 200
    assert writer.writes == 200 and writer.batches < 200


def test_writer_project_error_fails_alone(db):
    writer = BatchWriter(db)
    writer.start()

    def refused():
        raise NotFoundError("attempt 9: unknown id or wrong token")

    with pytest.raises(NotFoundError, match="attempt 9"):
        writer.call(refused)
    assert writer.call(add("+12025550100")) == "+12025550100"
    writer.stop()
    assert DncEntry.select().count() == 1


def test_writer_a_broken_write_does_not_take_the_batch_with_it(db, caplog):
    """The duplicate and the good write share ONE batch (the writer is held until both are
    queued, good one first; queued while `held` ran, they join its transaction): the batch
    fails on the duplicate, then each write is retried in a transaction of its own, so the
    good one runs twice and lands, and only the duplicate fails."""
    writer = BatchWriter(db)
    writer.start()
    writer.call(add("+12025550100"))
    entered, gate = threading.Event(), threading.Event()
    runs = {"ok": 0}

    def held():
        entered.set()
        assert gate.wait(10)

    def ok():
        runs["ok"] += 1
        return add("+12025550101")()

    hold = Caller(writer, held)
    hold.start()
    assert entered.wait(10)  # the writer runs `held`: what comes next queues up behind it
    good = Caller(writer, ok)
    good.start()
    wait_queued(writer, 1)
    dup = Caller(writer, add("+12025550100"))
    dup.start()
    wait_queued(writer, 2)
    batches = writer.batches
    gate.set()
    for c in (hold, good, dup):
        assert c.returned.wait(30)
    writer.stop()
    assert hold.error is None
    assert writer.batches == batches + 1  # `held`, good and duplicate together
    assert good.error is None and good.result == "+12025550101"
    assert runs["ok"] == 2  # in the failed batch, then alone
    assert isinstance(dup.error, peewee.IntegrityError)
    assert DncEntry.select().count() == 2
    assert "retrying one write a transaction" in caplog.text
    assert "unreachable" not in caplog.text and "lost its database connection" not in caplog.text


def hold_writer(writer):
    """(Caller, gate): the writer runs the Caller's write (it adds +12025550100), its
    transaction open, until `gate` is set; what is submitted meanwhile queues up."""
    entered, gate = threading.Event(), threading.Event()

    def held():
        entered.set()
        assert gate.wait(10)
        return add("+12025550100")()

    first = Caller(writer, held)
    first.start()
    assert entered.wait(10)
    return first, gate


def test_writer_takes_writes_queued_while_a_batch_runs_into_its_transaction(db):
    writer = BatchWriter(db)
    writer.start()
    try:
        first, gate = hold_writer(writer)
        later = [Caller(writer, add("+1202555011%d" % i)) for i in range(3)]
        for c in later:
            c.start()
        wait_queued(writer, 3)
        batches = writer.batches
        gate.set()
        for c in [first] + later:
            assert c.returned.wait(30) and c.error is None
        assert writer.batches == batches + 1 and writer.writes >= 4  # one COMMIT for the four
    finally:
        writer.stop()
    assert DncEntry.select().count() == 4


def test_writer_stop_queued_while_a_batch_runs_commits_what_came_before_it(db):
    writer = BatchWriter(db)
    writer.start()
    first, gate = hold_writer(writer)
    second = writer.submit(add("+12025550101"))
    stopper = threading.Thread(target=writer.stop, daemon=True)
    stopper.start()  # queues the stop marker behind `second`, then waits for the writer
    wait_queued(writer, 2)
    gate.set()
    stopper.join(30)
    assert not stopper.is_alive() and first.returned.wait(30) and first.error is None
    assert second.result(0) == "+12025550101"
    with pytest.raises(StartupError, match="not running"):
        writer.submit(add("+12025550102"))
    assert DncEntry.select().count() == 2


def test_writer_a_write_with_its_own_connection_context_leaves_the_connection_open(db):
    writer = BatchWriter(db)
    writer.start()

    def nested():
        with db.connection_context():  # must not close the writer's connection mid-transaction
            return add("+12025550100")()

    try:
        assert writer.call(nested) == "+12025550100"
        assert writer.call(add("+12025550101")) == "+12025550101"
    finally:
        writer.stop()
    assert DncEntry.select().count() == 2


def test_writer_refuses_work_when_stopped(db):
    writer = BatchWriter(db)
    with pytest.raises(StartupError, match="not running"):
        writer.call(add("+12025550100"))
    with pytest.raises(StartupError, match="not running"):
        writer.submit(add("+12025550100"))


def test_writer_submit_settles_in_order_once_committed_across_a_lost_connection(db, faults):
    """Writes queued without waiting (submit) keep their order and their results when the
    connection is lost between them."""
    writer = fast_writer(db)
    order = []

    def logged(phone):
        def write():
            add(phone)()
            order.append(phone)
            return phone
        return write

    try:
        assert writer.submit(logged("+12025550100")).result(20) == "+12025550100"
        faults.kill()
        rest = [writer.submit(logged("+1202555%04d" % i)) for i in (101, 102, 103)]
        assert [f.result(20) for f in rest] == ["+12025550101", "+12025550102", "+12025550103"]
    finally:
        writer.stop()
    assert faults.committed_phones() == ["+12025550100", "+12025550101", "+12025550102",
                                         "+12025550103"]
    assert order[-3:] == ["+12025550101", "+12025550102", "+12025550103"]  # the committed run


# ---- the database connection dies under the writer --------------------------------------


def test_writer_reconnects_after_its_connection_is_killed(db, faults, caplog):
    writer = fast_writer(db)
    try:
        assert writer.call(add("+12025550100")) == "+12025550100"
        assert faults.kill() >= 1
        assert writer.call(add("+12025550101"), timeout=20) == "+12025550101"
        assert writer.call(add("+12025550102"), timeout=20) == "+12025550102"
    finally:
        writer.stop()
    assert faults.committed_phones() == ["+12025550100", "+12025550101", "+12025550102"]
    assert caplog.text.count("lost its database connection") == 1


def test_writer_acknowledges_a_write_only_once_committed(db, faults):
    """The connection dies after the write ran but before COMMIT: the write is rolled back, so
    the caller must not get its result then; it gets it once a rerun has been committed."""
    writer = fast_writer(db)
    runs = []

    def write_then_lose_connection():
        runs.append(1)
        add("+12025550100")()
        if len(runs) == 1:  # the first run: the connection dies before COMMIT
            if faults.pg:  # from another connection, waiting until the backend is gone
                pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
                faults._admin("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            else:
                db.connection().close()
        return "recorded"

    try:
        assert writer.call(write_then_lose_connection, timeout=20) == "recorded"
        assert faults.committed_phones() == ["+12025550100"]  # committed before we were told
        assert len(runs) == 2
    finally:
        writer.stop()


def test_writer_holds_writes_while_the_database_is_down_and_applies_them_after(db, faults,
                                                                              caplog):
    caplog.set_level(logging.INFO, logger="agi_campaign.result_writer")
    writer = fast_writer(db)
    try:
        writer.call(add("+12025550100"))
        faults.down()
        callers = [Caller(writer, add("+1202555%04d" % (101 + i))) for i in range(3)]
        for c in callers:
            c.start()
        time.sleep(1.5)  # about ten reconnection attempts at 50-200 ms
        assert [c.error for c in callers] == [None] * 3, "a write failed while the db was down"
        assert not any(c.returned.is_set() for c in callers), "acknowledged while down"
        warnings = [r for r in caplog.records
                    if r.name == "agi_campaign.result_writer" and r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one per outage
        faults.up()
        for c in callers:
            assert c.returned.wait(20)
        assert [c.error for c in callers] == [None] * 3
        assert sorted(c.result for c in callers) == ["+12025550101", "+12025550102",
                                                     "+12025550103"]
        assert faults.committed_phones() == ["+12025550100", "+12025550101", "+12025550102",
                                             "+12025550103"]
        assert writer.call(add("+12025550200")) == "+12025550200"
    finally:
        writer.stop()
    assert "reachable again" in caplog.text


def test_writer_stop_is_bounded_while_the_database_is_down(db, faults):
    writer = fast_writer(db)
    writer.call(add("+12025550100"))
    faults.down()
    caller = Caller(writer, add("+12025550101"))
    caller.start()
    time.sleep(0.5)
    assert not caller.returned.is_set()
    began = time.monotonic()
    writer.stop(timeout=5)
    took = time.monotonic() - began
    assert caller.returned.wait(5)
    assert took < 5
    assert isinstance(caller.error, StartupError)
    assert "not recorded" in str(caller.error) and "database" in str(caller.error)
    faults.up()
    assert faults.committed_phones() == ["+12025550100"]
