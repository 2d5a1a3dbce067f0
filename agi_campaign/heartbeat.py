"""The running service's heartbeat: who runs on this database, whether its scheduler ticks, and
the outcome of its last reload.

Each `agi-campaign run` process owns one `service_heartbeat` row keyed by (host, pid)
(`Heartbeat`): written at start, updated every HEARTBEAT_EVERY_S by a scheduler job (one
UPDATE: `beat_at`, and `last_tick` = when the engine's states tick last completed), marked
`stopped_at` by a graceful stop, and given the outcome of each reload. At start a service
deletes the rows of processes that are no longer live (and an old row of its own host and pid,
which a restarted container reuses). Several nodes on one database each keep their own row.

Staleness rule (`is_live`, time passed in): a row is live when it has no `stopped_at` and its
`beat_at` is at most `stale_after_s(tick_ms)` = max(STALE_MIN_S, STALE_TICKS ticks) old; its
scheduler ticks when `last_tick` is within the same bound (a service that beats but does not
tick is "running, but its scheduler has not ticked for N s"). The tick age shown is as of the
last beat, so up to HEARTBEAT_EVERY_S more than the true one. Ages compare the writer's wall
clock with the reader's: hosts sharing a database are assumed to be NTP-synchronised.

`read(now)` gives the current heartbeat as a dict (`describe`), `line(info, zone)` the
sentence `status` prints.
"""
import logging
import os
import socket

from agi_campaign import __version__
from agi_campaign.clock import from_db, show_time, to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.errors import StartupError
from agi_campaign.gate import db_now
from agi_campaign.models import ServiceHeartbeat

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0
STALE_MIN_S = 5.0
STALE_TICKS = 10


def stale_after_s(tick_ms):
    """Seconds after which a beat (or a tick) no longer proves the service runs (ticks)."""
    return max(STALE_MIN_S, STALE_TICKS * (tick_ms or 0) / 1000.0)


def is_live(stopped_at, beat_at, tick_ms, now):
    """The staleness rule (module docstring): aware datetimes (or None) and `now`."""
    return stopped_at is None and beat_at is not None and (
        (now - beat_at).total_seconds() <= stale_after_s(tick_ms))


class Heartbeat:
    """This process's row. Each method is one statement in its own connection context."""

    def __init__(self, instance, tick_ms, host=None, pid=None, version=__version__):
        self.instance, self.tick_ms, self.version = instance, tick_ms, version
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.row_id = None
        self.started_at = None

    def start(self, now):
        """Delete rows of processes no longer live, then write this one's; its id is this
        node's id (`row_id`). Refused (StartupError) while a live node of another instance
        name runs on this database: nodes sharing a database must share their instance."""
        with database.connection_context(), database.atomic():
            rows = list(ServiceHeartbeat.select())
            dead = [r.id for r in rows
                    if not is_live(from_db(r.stopped_at), from_db(r.beat_at), r.tick_ms, now)
                    or (r.host, r.pid) == (self.host, self.pid)]
            other = [r for r in rows if r.id not in dead and r.instance != self.instance
                     and is_postgres()]  # SQLite: its file lock proves the others dead
            if other:
                raise StartupError(
                    "service.instance is %s here, but the node on %s pid %s runs as instance "
                    "%s on this database; nodes sharing a database must have the same instance "
                    "(remove service.instance or set it alike in every node's config)"
                    % (self.instance, other[0].host, other[0].pid, other[0].instance))
            for row in rows:    # each only if unchanged since read: a node that beat in
                if row.id in dead:  # between is live again (PostgreSQL: READ COMMITTED)
                    ServiceHeartbeat.delete().where(
                        (ServiceHeartbeat.id == row.id)
                        & (ServiceHeartbeat.beat_at == row.beat_at)).execute()
            self.row_id = ServiceHeartbeat.insert(
                host=self.host[:255], pid=self.pid, instance=self.instance, version=self.version,
                tick_ms=self.tick_ms, started_at=to_db(now), beat_at=to_db(now)).execute()
        self.started_at = now

    def _update(self, **fields):
        with database.connection_context():
            return ServiceHeartbeat.update(**fields).where(
                ServiceHeartbeat.id == self.row_id).execute()

    def beat(self, now, last_tick):
        """`last_tick`: when the states tick last completed (aware, or None before the first).
        A row another node deleted meanwhile (it took this one for dead: no beat for
        `stale_after_s`, e.g. while cut from the database) is written again, same id."""
        if self._update(beat_at=to_db(now), last_tick=to_db(last_tick)) == 0:
            with database.connection_context():
                ServiceHeartbeat.insert(
                    id=self.row_id, host=self.host[:255], pid=self.pid, instance=self.instance,
                    version=self.version, tick_ms=self.tick_ms, started_at=to_db(self.started_at),
                    beat_at=to_db(now), last_tick=to_db(last_tick)).on_conflict_ignore().execute()
            log.warning("this node's heartbeat row was gone (taken for dead by another node "
                        "while it could not beat): written again")

    def record_reload(self, now, ok, text):
        self._update(reload_at=to_db(now), reload_ok=bool(ok), reload_text=text)

    def stop(self, now):
        self._update(stopped_at=to_db(now), beat_at=to_db(now))


SKEW_WARN_S = 0.5


def clock_skew_s(now):
    """How far this host's clock (`now`) is ahead of the database server's (PostgreSQL; None
    on SQLite, which has no clock of its own). Nodes stamp their heartbeats with their own
    clocks and judge each other's by them: a skew above SKEW_WARN_S is worth a warning."""
    if not is_postgres():
        return None
    with database.connection_context():
        return (now - db_now()).total_seconds()


def live_ids(now):
    """The ids of the nodes live at `now` (the staleness rule)."""
    return {info["node"] for info in read_all(now) if info["running"]}


def describe(row, now):
    """A row as a dict: node (the row's id: the node's id), host, pid, instance, version,
    tick_ms, started_at, beat_at, last_tick, stopped_at (aware UTC datetimes or None),
    running, ticking (bools), last_tick_age_s (seconds or None) and reload (None, or {at, ok,
    text})."""
    beat_at, last_tick = from_db(row.beat_at), from_db(row.last_tick)
    stopped_at = from_db(row.stopped_at)
    running = is_live(stopped_at, beat_at, row.tick_ms, now)
    age = (now - last_tick).total_seconds() if last_tick is not None else None
    return {
        "node": row.id, "host": row.host, "pid": row.pid, "instance": row.instance,
        "version": row.version,
        "tick_ms": row.tick_ms, "started_at": from_db(row.started_at), "beat_at": beat_at,
        "last_tick": last_tick, "stopped_at": stopped_at, "running": running,
        "ticking": running and age is not None and age <= stale_after_s(row.tick_ms),
        "last_tick_age_s": age,
        "reload": None if row.reload_at is None else {
            "at": from_db(row.reload_at), "ok": bool(row.reload_ok), "text": row.reload_text},
    }


def read_all(now):
    """Every row described (`describe`), the most recently beating first."""
    with database.connection_context():
        rows = list(ServiceHeartbeat.select().order_by(ServiceHeartbeat.beat_at.desc(),
                                                       ServiceHeartbeat.id.desc()))
    return [describe(row, now) for row in rows]


def read(now):
    """The current heartbeat: the live row beating last, else the row seen last (not running),
    else None (no service ever ran on this database since it was last cleaned)."""
    rows = read_all(now)
    live = [r for r in rows if r["running"]]
    return (live or rows or [None])[0]


def line(info, zone="UTC"):
    """What `status` says about the service (`info` from `read`; times in `zone`)."""
    if info is None:
        return "service not running (never seen on this database); start it: agi-campaign run"
    where = "%s pid %s" % (info["host"], info["pid"])
    if not info["running"]:
        return "service not running (last seen %s on %s%s); start it: agi-campaign run" % (
            show_time(info["beat_at"], zone), where, ", stopped" if info["stopped_at"] else "")
    if info["last_tick"] is None:
        return "service running on %s, starting (no tick yet)" % where
    if not info["ticking"]:
        return "service running on %s, but its scheduler has not ticked for %.0f s" % (
            where, info["last_tick_age_s"])
    return "service running on %s, last tick %.1f s ago" % (where,
                                                           max(info["last_tick_age_s"], 0.0))


def reload_line(info, zone="UTC"):
    """The last reload's outcome in one line, or None."""
    reload = info and info["reload"]
    if not reload:
        return None
    return "last reload %s: %s%s" % (show_time(reload["at"], zone),
                                     "applied: " if reload["ok"] else "refused: ", reload["text"])


def as_json(info, zone="UTC"):
    """`info` with its times as ISO text in `zone` (and `line`), for JSON output."""
    if info is None:
        return {"running": False, "line": line(None)}
    out = {k: (show_time(v, zone, iso=True) if k in ("started_at", "beat_at", "last_tick",
                                                     "stopped_at") else v)
           for k, v in info.items() if k != "reload"}
    if info["reload"]:
        out["reload"] = dict(info["reload"], at=show_time(info["reload"]["at"], zone, iso=True))
    else:
        out["reload"] = None
    out["line"] = line(info, zone)
    return out
