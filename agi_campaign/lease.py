"""Named leases in the database: which node may do a job alone (issue 14: several `run`
processes on one database).

A lease is a row of table `lease` (models.Lease): `name` (a job, e.g. ``webhooks:<campaign
id>``), `holder` (a node id: its service_heartbeat row id), `epoch` (one more each time the
holder changes) and `expires_at` (naive UTC). It is valid while the database's now is before
`expires_at`. Time is the database's: on PostgreSQL ``clock_timestamp()`` in UTC, so nodes need
no synchronised clocks; on SQLite (one node only) the caller's `now`.

`claim(name, holder, ttl_s, now)` is the one statement that acquires or renews (an upsert
with RETURNING, SQLite >= 3.35 and PostgreSQL): it sets `expires_at` to now + ttl_s when the
row is new, already ours, or expired; the epoch grows only when the holder changes. Anything
else (a valid lease of another holder) changes nothing and returns None.

`Lease(name, holder, ttl_s, clock)` is one holder's view (River's rule): it trusts its lease
until the monotonic time at which its last successful renewal *started*, plus ttl_s, minus
`margin_s`. The database granted ttl_s from an instant after that start, so the trust never
outlasts the grant, and a slow renewal shortens the trust rather than extends it. `hold(for_s)`
renews when due (every ttl_s / 3, or sooner when less than `for_s` of trust is left) and says
whether the lease is trusted for `for_s` more seconds; a database error makes it untrusted
(logged once per run of errors), never raised. `release()` expires it now if we hold it, so
another node takes over at its next try. `holders(prefix)` lists the leases for `status`;
`expire_all(prefix, now)` frees them all, for a node that knows it is alone.
"""
import datetime as dt
import logging

import peewee

from agi_campaign.clock import from_db, to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.models import Lease as LeaseRow

log = logging.getLogger(__name__)

MARGIN_S = 1.0      # trust ends this long before the grant: clock-rate drift, a slow check
RENEW_FRACTION = 3  # renew every ttl_s / 3: two renewals may fail before the trust runs out

_PG_NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"
_CLAIM = ("INSERT INTO lease (name, holder, epoch, expires_at) VALUES ({p}, {p}, 1, {expires}) "
          "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
          "epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch "
          "ELSE lease.epoch + 1 END, expires_at = excluded.expires_at "
          "WHERE lease.holder = excluded.holder OR lease.expires_at <= {now} "
          "RETURNING holder, epoch, expires_at")
_RELEASE = "UPDATE lease SET expires_at = {now} WHERE name = {p} AND holder = {p}"


def _now_sql(now):
    """The SQL of "now" and its parameters: the database's clock on PostgreSQL, else `now`."""
    if is_postgres():
        return _PG_NOW, ()
    return database.param, (to_db(now),)


def claim(name, holder, ttl_s, now):
    """Acquire or renew lease `name` for `holder` for ttl_s seconds (module docstring):
    (epoch, expires_at aware UTC) when granted, else None. `now` (aware) is used on SQLite
    only. One statement in its own connection context; database errors propagate."""
    p = database.param
    now_sql, now_args = _now_sql(now)
    if is_postgres():
        expires, expires_args = "%s + %s * interval '1 second'" % (_PG_NOW, p), (ttl_s,)
    else:
        expires, expires_args = p, (to_db(now + dt.timedelta(seconds=ttl_s)),)
    sql = _CLAIM.format(p=p, expires=expires, now=now_sql)
    with database.connection_context():
        row = database.execute_sql(sql, (name, holder) + expires_args + now_args).fetchone()
    return None if row is None else (row[1], from_db(row[2]))


def expire(name, holder, now):
    """Lease `name` expires now if `holder` holds it (else nothing changes)."""
    now_sql, now_args = _now_sql(now)
    with database.connection_context():
        database.execute_sql(_RELEASE.format(p=database.param, now=now_sql),
                             now_args + (name, holder))


def expire_all(prefix, now):
    """Every lease whose name starts with `prefix` expires now: for a node that knows no other
    node can hold them (the one `run` of a SQLite database, after a crash)."""
    now_value = peewee.SQL(_PG_NOW) if is_postgres() else to_db(now)
    with database.connection_context():
        LeaseRow.update(expires_at=now_value).where(
            LeaseRow.name.startswith(prefix) & (LeaseRow.expires_at > now_value)).execute()


def holders(prefix=""):
    """{name: (holder, expires_at aware UTC)} of the leases whose name starts with `prefix`
    (expired ones too: compare expires_at with the database's now)."""
    with database.connection_context():
        rows = list(LeaseRow.select().where(LeaseRow.name.startswith(prefix)))
    return {row.name: (row.holder, from_db(row.expires_at)) for row in rows
            if row.name.startswith(prefix)}     # startswith is case-insensitive on PostgreSQL


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class Lease:
    """One holder's lease `name` (module docstring). `ttl_s` may be changed between calls
    (a reload changed what it covers); `epoch` is the last granted epoch (None before)."""

    def __init__(self, name, holder, ttl_s, clock, margin_s=MARGIN_S):
        self.name, self.holder, self.ttl_s = name, holder, float(ttl_s)
        self.margin_s = margin_s
        self.epoch = None
        self._clock = clock
        self._granted_m = None      # monotonic start of the last successful renewal
        self._granted_ttl_s = 0.0   # and the ttl it asked for (ttl_s may have changed since)
        self._failing = False

    def trusted_for(self):
        """Seconds of trust left (0 when not held)."""
        if self._granted_m is None:
            return 0.0
        left = self._granted_m + self._granted_ttl_s - self.margin_s - self._clock.monotonic()
        return max(left, 0.0)

    def hold(self, for_s=0.0):
        """True when the lease is ours and trusted for more than `for_s` seconds, renewing it
        first when ttl_s / RENEW_FRACTION passed since the last renewal began, when less than
        `for_s` is left, or when we do not hold it (then it is acquired if free or expired)."""
        left = self.trusted_for()
        if left <= for_s or (self._clock.monotonic() - self._granted_m
                             >= self.ttl_s / RENEW_FRACTION):
            self._renew()
            left = self.trusted_for()
        return left > for_s

    def _renew(self):
        started, ttl_s = self._clock.monotonic(), self.ttl_s
        try:
            granted = claim(self.name, self.holder, ttl_s, self._clock.now())
        except peewee.PeeweeException as err:
            (log.info if self._failing else log.warning)(
                "lease=%s node=%s not renewed, so not trusted: %s", self.name, self.holder,
                _first_line(err))
            self._failing, self._granted_m = True, None
            return
        self._failing = False
        if granted is None:
            if self._granted_m is not None:
                log.info("lease=%s node=%s lost it to another node", self.name, self.holder)
            self._granted_m = None
            return
        if self._granted_m is None:
            log.info("lease=%s node=%s holds it (epoch %s)", self.name, self.holder, granted[0])
        self.epoch, self._granted_m, self._granted_ttl_s = granted[0], started, ttl_s

    def release(self):
        """Expire the lease now if we hold it, so another node takes over at its next try;
        a database error is logged (the lease then expires by itself)."""
        self._granted_m = None
        try:
            expire(self.name, self.holder, self._clock.now())
        except peewee.PeeweeException as err:
            log.warning("lease=%s node=%s not released (it expires within %.0f s): %s",
                        self.name, self.holder, self.ttl_s, _first_line(err))
