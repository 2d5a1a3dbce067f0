"""One service per SQLite database (the lock dies with its holder; PostgreSQL takes several
nodes), and the instance name."""
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from agi_campaign.deployment import ServiceLock, instance_name
from agi_campaign.db import make_database
from agi_campaign.errors import StartupError
from agi_campaign.models import open_database

from tests.unit.support import T0


def test_deployment_instance_name_is_created_once_and_kept(db):
    first = instance_name()
    assert re.fullmatch(r"[a-z0-9]{8}", first)
    assert instance_name() == first
    assert instance_name("sales1") == "sales1"


def test_deployment_second_service_on_sqlite_is_refused_postgres_takes_several(db, db_url):
    first = ServiceLock(db)
    first.acquire(T0)
    second = ServiceLock(make_database(db_url))
    try:
        if db_url.startswith("postgresql"):
            second.acquire(T0)  # several nodes share a PostgreSQL database
            first.release()
            second.release()
            _old_version_holds_the_lock(db, second)
            return
        with pytest.raises(StartupError) as err:
            second.acquire(T0)
        text = str(err.value)
        assert "another agi-campaign service runs on this SQLite database" in text
        assert "to run several nodes on one database, move to PostgreSQL" in text
        assert "pid %d" % os.getpid() in text and "since 2026-12-01T09:00:00Z" in text
        first.release()
        second.acquire(T0)  # free again once the first one stopped
    finally:
        first.release()
        second.release()


def test_deployment_lock_of_a_killed_service_does_not_block_its_restart(tmp_path):
    """A holder killed with SIGKILL (no clean-up at all) leaves the SQLite lock free."""
    db_url = "sqlite:///" + str(tmp_path / "t.db")
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from agi_campaign.models import open_database
        from agi_campaign.deployment import ServiceLock
        from tests.unit.support import T0
        lock = ServiceLock(open_database(sys.argv[1]))
        lock.acquire(T0)
        open(sys.argv[2], "w").close()
        time.sleep(120)
        """), db_url, str(ready)], cwd=os.getcwd())
    try:
        for _ in range(300):
            if ready.exists() or child.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        assert ready.exists(), "the child never took the lock"
        lock = ServiceLock(open_database(db_url))
        with pytest.raises(StartupError, match="pid %d" % child.pid):
            lock.acquire(T0)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        _acquire_once_free(lock, "the lock of a killed service was never released")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def _old_version_holds_the_lock(db, lock):
    """A service of an earlier version took the advisory lock exclusively (it ran alone): a
    node of this version refuses to start beside it, and starts once it is gone."""
    import psycopg2

    from agi_campaign.deployment import ADVISORY_KEY

    old = psycopg2.connect(dbname=db.database, **db.connect_params)
    try:
        old.autocommit = True
        with old.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,))
            assert cur.fetchone()[0]
        with pytest.raises(StartupError, match="an agi-campaign service of an earlier version"):
            lock.acquire(T0)
    finally:
        old.close()
    _acquire_once_free(lock, "the lock of a stopped earlier-version service was never released")


def _acquire_once_free(lock, failure):
    """Take `lock` within 10 s (the holder is gone: the kernel drops its flock, PostgreSQL its
    session's lock once it sees the connection close), then release it."""
    for _ in range(100):
        try:
            lock.acquire(T0)
            break
        except StartupError:
            subprocess.run(["sleep", "0.1"])
    else:
        pytest.fail(failure)
    lock.release()
