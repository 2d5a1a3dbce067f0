"""The answered path never waits on the database: a callee must not hear dead air while the
database is slow (SQLite locked by an import, a PostgreSQL row lock)."""
import threading

from agi_campaign.claim import claim_due
from agi_campaign.config import OnConnect
from agi_campaign.db import is_postgres, make_database
from agi_campaign.fastagi import FastAgiServer
from agi_campaign.models import Attempt
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.routes import Router
from agi_campaign.result_writer import BatchWriter

from tests.unit.fakeagi import FakeAsterisk
from tests.unit.support import T0, FakeClock, make_campaign, make_numbers, wait_until


def _hold_write_lock(db_url, attempt_id):
    """Another connection that blocks writes to the attempt until closed."""
    other = make_database(db_url)
    other.connect()
    if is_postgres(other):
        other.execute_sql("BEGIN")
        other.execute_sql("SELECT id FROM attempt WHERE id = %s FOR UPDATE", (attempt_id,))
    else:
        other.execute_sql("BEGIN IMMEDIATE")  # what an import holds for its whole transaction
    return other


def test_answered_callee_hears_the_message_while_the_database_is_locked(db, db_url):
    campaign = make_campaign("reminders")
    make_numbers(campaign, 1)
    att = claim_due(campaign.id, 1, T0, "main", (), 3)[0]
    writer = BatchWriter(db)
    writer.start()
    recorder = Recorder(lambda name: RetryPolicy(3, 60), writer)
    on_connect = OnConnect("message", sounds=("hello-world",), repeat=1)
    router = Router(lambda name: on_connect, recorder, FakeClock(T0), "ab12")
    server = FastAgiServer("127.0.0.1", 0, router)
    server.start()
    other = _hold_write_lock(db_url, att.attempt_id)
    released = threading.Event()
    try:
        fake = FakeAsterisk(server.address)
        fake.send_env("connect", args=(str(att.attempt_id), att.token))
        # Before any write could commit, the message is already playing (a read of 5 s at
        # most: without the fix the session waits for the lock, 30 s on SQLite, for ever on
        # PostgreSQL).
        assert fake.read_line() == 'STREAM FILE "hello-world" "" "0"'
        assert Attempt.get_by_id(att.attempt_id).answered_at is None  # still locked out
        fake.send("200 result=0 endpos=8000")
        other.rollback() if is_postgres(other) else other.execute_sql("ROLLBACK")
        released.set()
        assert wait_until(lambda: Attempt.get_by_id(att.attempt_id).answered_at is not None, 20)
        assert wait_until(lambda: Attempt.get_by_id(att.attempt_id).dest_result == "played", 20)
        fake.close()
    finally:
        if not released.is_set():
            other.execute_sql("ROLLBACK")
        other.close()
        server.stop()
        writer.stop()
