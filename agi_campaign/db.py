"""Building the database from its URL: SQLite by default, PostgreSQL by URL.

`database` is the Peewee DatabaseProxy the models bind to (agi_campaign.models.open_database
builds the database with `make_database` and initialises the proxy). SQLite is opened in WAL
mode with synchronous=FULL, a 30 s busy timeout and IMMEDIATE write transactions (so a
read-then-write transaction never fails with SQLITE_BUSY_SNAPSHOT).

Connections are pooled (playhouse.pool), one checked out per thread at a time: the service
wraps every FastAGI session and scheduler job in `connection_context()`, and opening a
connection each time cost more than the work done in it (bench/: Peewee's `connect()`/`close()`
run under one global lock, and a new SQLite connection runs five PRAGMAs, a new PostgreSQL one
forks a backend). The pool has no size cap; connections older than POOL_STALE_S are closed when
next checked in or out.
"""
import os

import peewee
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from agi_campaign.dburl import POSTGRES_SCHEMES, POSTGRES_URL_HINT, mask_url, parse_postgres_url
from agi_campaign.errors import ConfigError, StartupError

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    # FULL: in WAL mode NORMAL may roll back the last commits on power loss, and the attempt
    # row written before an Originate is what stops a second call to the same person.
    "synchronous": "full",
    "foreign_keys": 1,
    "cache_size": -8000,  # 8 MB a connection: the pool holds many (bench/ memory)
    "busy_timeout": 30000,
}
POOL_STALE_S = 300
# A server that drops packets (rather than refusing) must not hold a connect or a dead
# connection for the kernel's TCP timeout (minutes): give up connecting after 5 s, and notice
# a silently dead connection within about a minute. URL parameters override these.
PG_CONNECTION_DEFAULTS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30,
                          "keepalives_interval": 10, "keepalives_count": 3}


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
    """The database of a URL parsed strictly by dburl.parse_postgres_url (same rules as the config check)."""
    try:
        parts = parse_postgres_url(url)
    except ValueError as err:
        raise ConfigError("database.url is not a valid PostgreSQL URL: %s; got %r; %s"
                          % (err, mask_url(url), POSTGRES_URL_HINT)) from None
    return PooledPostgresqlDatabase(
        parts.dbname,
        user=parts.user,
        password=parts.password,
        host=parts.host,
        port=parts.port,
        autoconnect=True,
        max_connections=None,
        stale_timeout=POOL_STALE_S,
        **dict(PG_CONNECTION_DEFAULTS, **dict(parts.params)),
    )


def make_database(url, base_dir=None):
    """Build (not bind) a Peewee database for a sqlite:/// or postgresql:// URL."""
    if url.startswith("sqlite:///"):
        return _sqlite(url, base_dir)
    if url.startswith(POSTGRES_SCHEMES):
        return _postgres(url)
    raise ConfigError("database.url must start with sqlite:/// or postgresql://, got %r; use "
                      "sqlite:///path.db or postgresql://user:password@host:5432/dbname"
                      % (mask_url(url),))
