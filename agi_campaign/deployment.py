"""This deployment's identity on shared resources, and the one-service-per-database lock.

Instance name: channel ids (`acamp-<instance>-<id>-<token>`) and AstDB keys carry it, so two
dialers with their own databases (and so the same attempt ids) can share one Asterisk. It is
`service.instance` from the config, or else a random name created at the first start and kept
in the database (`setting` table), so it stays the same across restarts.

Service lock: one `agi-campaign run` per SQLite database (one writer at a time; the file
lives on one host). `flock` on `<database file>.lock`, held by the open file, so the operating
system drops it when the holder exits or is killed: a service killed with SIGKILL never blocks
its own restart. On PostgreSQL several nodes share the database (the claim gate,
agi_campaign.gate, keeps every cap across them): each holds the session advisory lock
ADVISORY_KEY in shared mode on a connection of its own, which an earlier version took
exclusively to run alone, so old and new services refuse to run side by side (a rolling
upgrade must stop the old service first). If that connection dies while the node runs, the
lock is gone until it restarts. Who holds the SQLite lock (host, pid, since) is written in the
`setting` table for the refusal message (an earlier-version service wrote its own there).
"""
import fcntl
import json
import os
import secrets
import socket

from agi_campaign.clock import to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.errors import StartupError
from agi_campaign.models import Setting

INSTANCE_KEY = "instance"
HOLDER_KEY = "service"
# the advisory lock key: earlier versions took it exclusively (one service per database),
# nodes of this version take it shared
ADVISORY_KEY = 0x61676963


def instance_name(configured=None):
    """`configured` if set, else this database's own name (created once, then kept)."""
    if configured:
        return configured
    with database.connection_context():
        Setting.insert(key=INSTANCE_KEY, value=secrets.token_hex(4)).on_conflict_ignore() \
            .execute()
        return Setting.get_by_id(INSTANCE_KEY).value


class ServiceLock:
    """Held by the running service for its whole life; `acquire` refuses a second one."""

    def __init__(self, db):
        self._db = db
        self._handle = None

    def acquire(self, now):
        """Take the lock or raise StartupError naming the service that has it."""
        if is_postgres(self._db):
            if not self._take_postgres_shared():
                raise StartupError(
                    "an agi-campaign service of an earlier version (one service per database) "
                    "runs on this PostgreSQL database (%s); stop it before starting nodes of "
                    "this version: the earlier one does not share max_channels with them"
                    % _holder_text())
            return
        if not self._take_sqlite():
            raise StartupError(
                "another agi-campaign service runs on this SQLite database (%s); SQLite allows "
                "one service per database: stop that one, or, to run several nodes on one "
                "database, move to PostgreSQL (database.url: postgresql://...; README, "
                "\"Several nodes\")" % _holder_text())
        holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                             "since": to_db(now).isoformat(timespec="seconds") + "Z"})
        with database.connection_context():
            Setting.insert(key=HOLDER_KEY, value=holder).on_conflict(
                conflict_target=[Setting.key], update={Setting.value: holder}).execute()

    def release(self):
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()  # the file (flock) or the connection (advisory lock)
            except Exception:  # boundary: releasing on the way out must not raise
                pass

    def _take_sqlite(self):
        path = self._db.database
        if path == ":memory:":
            return True
        handle = open(path + ".lock", "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def _take_postgres_shared(self):
        """The advisory lock ADVISORY_KEY in shared mode, on a connection of its own: nodes of
        this version share it; a service of an earlier version, which took it exclusively to
        run alone, and these nodes exclude each other (so a rolling upgrade cannot run an old
        service, blind to the claim gate, beside new nodes)."""
        import psycopg2

        conn = psycopg2.connect(dbname=self._db.database, **self._db.connect_params)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock_shared(%s)", (ADVISORY_KEY,))
            taken = cur.fetchone()[0]
        if not taken:
            conn.close()
            return False
        self._handle = conn
        return True


def _holder_text():
    with database.connection_context():
        row = Setting.get_or_none(Setting.key == HOLDER_KEY)
    if row is None:
        return "holder unknown"
    try:
        holder = json.loads(row.value)
        return "host %s, pid %s, since %s" % (holder["host"], holder["pid"], holder["since"])
    except (ValueError, KeyError, TypeError):
        return "holder unknown"

