"""Opening the database: SQLite by default, PostgreSQL by URL.

`database` is a Peewee DatabaseProxy that the models bind to; `open_database` initialises it.
SQLite is opened in WAL mode with a 30 s busy timeout and IMMEDIATE write transactions (so a
read-then-write transaction never fails with SQLITE_BUSY_SNAPSHOT), one connection per thread.

Connections are pooled (playhouse.pool): the service wraps every FastAGI session and AMI event
in `connection_context()`, and opening a connection each time cost more than the work done in
it (bench/: Peewee's `connect()`/`close()` run under one global lock, and a new SQLite
connection runs five PRAGMAs, a new PostgreSQL one forks a backend). The pool has no size cap,
like the connection-per-thread scheme it replaces; connections older than POOL_STALE_S are
closed when next checked in or out.

"""
import os
import urllib.parse

import peewee
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from agi_campaign.config import mask_url
from agi_campaign.errors import ConfigError, StartupError

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "cache_size": -8000,  # 8 MB a connection: the pool holds many (bench/ memory)
    "busy_timeout": 30000,
}
POOL_STALE_S = 300


def is_postgres(db=None):
    """True when the bound database is PostgreSQL."""
    target = db if db is not None else database.obj
    return isinstance(target, peewee.PostgresqlDatabase)


def _sqlite(url, base_dir):
    path = url[len("sqlite:///"):]
    if path != ":memory:":
        if not os.path.isabs(path):
            path = os.path.join(base_dir or os.getcwd(), path)
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise StartupError("database %s: folder %s does not exist; create it or change "
                               "database.url" % (url, folder))
    # `timeout` of a pooled database is the wait for a free connection (none: no cap); the
    # SQLite busy timeout is the busy_timeout PRAGMA.
    return PooledSqliteDatabase(path, pragmas=SQLITE_PRAGMAS, max_connections=None,
                                stale_timeout=POOL_STALE_S, lock_type="IMMEDIATE",
                                check_same_thread=False)


def _postgres(url):
    parts = urllib.parse.urlsplit(url)
    return PooledPostgresqlDatabase(
        (parts.path or "/").lstrip("/") or "postgres",
        user=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        autoconnect=True,
        max_connections=None,
        stale_timeout=POOL_STALE_S,
    )


def make_database(url, base_dir=None):
    """Build (not bind) a Peewee database for a sqlite:/// or postgresql:// URL."""
    if url.startswith("sqlite:///"):
        return _sqlite(url, base_dir)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres(url)
    raise ConfigError("database.url %r: unsupported scheme; use sqlite:///path.db or "
                      "postgresql://user:password@host:5432/dbname" % (url,))


def open_database(url, base_dir=None, create=True):
    """Bind the models to the database at `url` and create missing tables.

    Raises StartupError with the reason when the database cannot be opened or written.
    """
    db = make_database(url, base_dir)
    database.initialize(db)
    if create:
        try:
            create_tables()
        except peewee.DatabaseError as err:
            raise StartupError("database %s cannot be opened for writing: %s; check the path "
                               "and its permissions, or database.url" % (mask_url(url), err)) from err
    return db


def create_tables():
    from agi_campaign import models

    with database.connection_context():
        database.create_tables(models.ALL_MODELS, safe=True)
