"""The claim gate: every cap on starting calls, checked inside the claim's transaction, so that
the caps hold across all the nodes (`agi-campaign run` processes) sharing one database.

Design (docs/DESIGN.md, "Several nodes"): no node owns a campaign. Every node dials every
campaign, and each claim serialises on rows of the `dial_gate` table:
- the campaign's row `c:<campaign id>`, locked first (`SELECT ... FOR UPDATE` on PostgreSQL;
  on SQLite the claim's IMMEDIATE transaction already serialises every writer);
- then, when the campaign's server has `max_channels` or `max_cps`, the server's row
  `s:<name>` (always in that order: no deadlock between claims).
Under those locks the gate counts attempts in flight (claimed and not ended) with a separate
statement, so under READ COMMITTED it sees every attempt the previous lock holder committed.
A node that crashes before COMMIT leaves nothing; after it, its attempts count until they are
reconciled (agi_campaign.engine). A claim's transaction ends itself if its session idles 5 s
(IDLE_IN_CLAIM_MS: a node frozen mid-claim) and waits LOCK_TIMEOUT_MS at most for a lock.
One clock for all nodes on PostgreSQL: the database's (`clock_timestamp()`), whatever the
hosts' skew, for spacings (`next_at`), the attempts' stamps and which numbers are due; the
caller's on SQLite (one node), passed in (`admit`). A `next_at` further ahead than any spacing
asks means that clock stepped back: ignored, not waited for.

Limits, all at once:
- campaign `max_channels`: attempts of the campaign in flight;
- campaign `delay_ms`: its row's `next_at` (last start + delay_ms); one call per claim;
- server `max_channels`: attempts on the server in flight, every campaign and node;
- server `max_cps`: starts evenly spaced 1/max_cps apart (the row's `next_at`), one call per
  claim, so no burst reaches the carrier;
- fair share between the campaigns of one server: while another running campaign of the
  server could start a call (numbers due with attempts left, below its own max_channels,
  past its own delay_ms), a campaign takes at most ceil(server max_channels / (1 + the
  campaigns waiting)) channels, and does not start two calls in a row under max_cps unless
  the other let a whole interval pass. A backlog never starves a
  campaign; a lone campaign uses the whole server.

A campaign stopped by its server's limit has that limit in its row's `blocked` (with
`blocked_at`), shown by `status`; cleared by its next claim. Pure arithmetic is here too
(`share`, `spacing_wait`), tested without a database.
"""
import dataclasses
import datetime as _dt
import math

from agi_campaign.clock import from_db, to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.lifecycle import CampaignState
from agi_campaign.models import IN_FLIGHT_STATUSES, NumberStatus

LOCK_TIMEOUT_MS = 2000   # a claim waits this long at most for another node's lock (PostgreSQL)
IDLE_IN_CLAIM_MS = 5000  # a claim's session idle this long inside it is ended by PostgreSQL
BLOCKED_FRESH_S = 10.0   # `blocked` older than this (no claim since) is not shown by status


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one campaign's claims must respect. `peers`: ((campaign id, max_channels,
    max_attempts), ...) of the other campaigns configured on the same server (fair share)."""
    campaign_id: int
    max_channels: int
    delay_ms: int
    server: str
    server_max_channels: int | None = None
    server_max_cps: float | None = None
    peers: tuple = ()

    @property
    def server_limited(self):
        return self.server_max_channels is not None or self.server_max_cps is not None


@dataclasses.dataclass(frozen=True)
class Admission:
    """How many calls may start now (`allowed`), else which limit stops them (`limited_by`)
    and for how long at least (`wait_s`, 0: until a call ends); `now`: the time decided at
    (aware UTC; gate.admit says which clock), the claimed attempts' stamp; `spacing_at`: the
    spacing clock's, which `next_at` is kept in (the same instant unless a spacing clock was
    passed)."""
    allowed: int
    now: _dt.datetime
    limited_by: str | None = None
    wait_s: float = 0.0
    spacing_at: _dt.datetime | None = None


def share(server_max, waiting):
    """A campaign's fair share of a server's channels while `waiting` other campaigns wait."""
    return math.ceil(server_max / (1 + waiting))


def spacing_wait(next_at, now, longest_s):
    """Seconds until `next_at` (0 when it is None or past). A wait longer than `longest_s`,
    the most a spacing can ask, means the clock stepped back since `next_at` was written:
    0 (a start now, and `next_at` written again from this clock)."""
    if next_at is None:
        return 0.0
    wait = (next_at - now).total_seconds()
    return wait if 0 < wait <= longest_s + 1e-6 else 0.0


def lock_timed_out(err):
    """True when `err` (a Peewee error wrapping the driver's) is PostgreSQL's lock_timeout
    (SQLSTATE 55P03)."""
    causes = (err.__cause__, err.__context__) + tuple(err.args[:1])
    return any(getattr(cause, "pgcode", None) == "55P03" for cause in causes)


def db_now():
    """The database server's clock (aware UTC): PostgreSQL's clock_timestamp()."""
    value = database.execute_sql("SELECT clock_timestamp() AT TIME ZONE 'UTC'").fetchone()[0]
    return from_db(value)


def admit(limits, want, clock, spacing_clock=None):
    """Inside the claim's transaction: lock the gate rows and decide how many of `want` calls
    may start (Admission), at the time read once the locks are held: a claim that waited for
    another node's lock is judged, and stamped, when it gets it. By default that time is the
    database's clock on PostgreSQL (one clock for every node, whatever their skew: spacings,
    stamps and due numbers on it) and `clock()` (aware UTC) on SQLite. A `spacing_clock`
    given keeps spacings on it and the rest on `clock` (tests on a fake clock)."""
    postgres = is_postgres()
    if postgres:
        database.execute_sql("SET LOCAL lock_timeout = %d" % LOCK_TIMEOUT_MS)
        # a node frozen or cut off inside its claim must not hold the gate's rows for long
        database.execute_sql("SET LOCAL idle_in_transaction_session_timeout = %d"
                             % IDLE_IN_CLAIM_MS)

    def times():
        if spacing_clock is None:
            at = db_now() if postgres else clock()
            return at, at
        return clock(), spacing_clock()

    campaign_row = _lock("c:%d" % limits.campaign_id)
    now, at = times()
    in_flight = in_flight_count(limits.campaign_id)
    free = limits.max_channels - in_flight
    if free <= 0:
        return Admission(0, now, "max_channels", spacing_at=at)
    if limits.delay_ms > 0:
        wait = spacing_wait(from_db(campaign_row[0]), at, limits.delay_ms / 1000.0)
        if wait > 0:
            return Admission(0, now, "delay_ms", wait, spacing_at=at)
        free = 1
    allowed = min(want, free)
    if not limits.server_limited:
        return Admission(allowed, now, spacing_at=at)
    server_row = _lock("s:" + limits.server)
    now, at = times()
    admission, blocked = _server_admit(limits, allowed, server_row, now, at)
    _set_blocked(limits.campaign_id, campaign_row, blocked, now)
    return admission


def started(limits, admission, count):
    """After the claim of `count` calls (> 0), in the same transaction: record the starts."""
    at = to_db(admission.spacing_at)
    if limits.delay_ms > 0:
        _update("c:%d" % limits.campaign_id, next_at=at + _dt.timedelta(
            milliseconds=limits.delay_ms))
    if limits.server_max_cps is not None:   # admitted: its next_at had passed (or stepped)
        _update("s:" + limits.server, last_campaign=limits.campaign_id,
                next_at=at + _dt.timedelta(seconds=count / limits.server_max_cps))


def blocked_reasons(campaign_ids, now):
    """{campaign id: the server limit stopping it} for the campaigns stopped at their last
    claim, within BLOCKED_FRESH_S of `now` (status)."""
    keys = {"c:%d" % cid: cid for cid in campaign_ids}
    if not keys:
        return {}
    p = database.param
    rows = database.execute_sql(
        "SELECT key, blocked, blocked_at FROM dial_gate WHERE blocked IS NOT NULL AND key IN "
        "(%s)" % ", ".join([p] * len(keys)), list(keys)).fetchall()
    fresh = to_db(now) - _dt.timedelta(seconds=BLOCKED_FRESH_S)
    return {keys[key]: text for key, text, at in rows if at is not None and _naive(at) >= fresh}


# ---- the server's limits ---------------------------------------------------------------------

def _server_admit(limits, allowed, server_row, now, at):
    """(Admission, blocked text or None) under the server's lock; `at`: the spacing clock."""
    waiting = None
    if limits.server_max_channels is not None:
        per = _per_campaign_on(limits.server)
        free = limits.server_max_channels - sum(per.values())
        if free <= 0:
            return (Admission(0, now, "server max_channels", spacing_at=at),
                    "waiting for server %s: its max_channels %d are in use"
                    % (limits.server, limits.server_max_channels))
        waiting = _waiting_peers(limits, per, now, at)
        if waiting:
            mine = per.get(limits.campaign_id, 0)
            fair = share(limits.server_max_channels, len(waiting))
            if mine >= fair:
                return (Admission(0, now, "server fair share", spacing_at=at),
                        "waiting for server %s: its fair share of max_channels (%d of %d, %d "
                        "other campaign(s) waiting)" % (limits.server, fair,
                                                       limits.server_max_channels, len(waiting)))
            allowed = min(allowed, fair - mine)
        allowed = min(allowed, free)
    if limits.server_max_cps is not None:
        interval = 1.0 / limits.server_max_cps
        next_at = from_db(server_row[0])
        wait = spacing_wait(next_at, at, interval)
        if wait > 0:
            return (Admission(0, now, "server max_cps", wait, spacing_at=at),
                    "waiting for server %s: max_cps %g" % (limits.server, limits.server_max_cps))
        if server_row[1] == limits.campaign_id and next_at is not None:
            # our turn again: yield one interval to a waiting campaign of the server
            yielded = spacing_wait(next_at + _dt.timedelta(seconds=interval), at, 2 * interval)
            if yielded > 0:
                if waiting is None:
                    waiting = _waiting_peers(limits, _per_campaign_on(limits.server), now, at)
                if waiting:
                    return (Admission(0, now, "server fair share", yielded, spacing_at=at),
                            "waiting for server %s: its fair share of max_cps %g"
                            % (limits.server, limits.server_max_cps))
        allowed = min(allowed, 1)
    return Admission(allowed, now, spacing_at=at), None


def _waiting_peers(limits, per, now, at):
    """The other campaigns of the server that could start a call now and want to: running,
    below their own max_channels, past their own delay_ms spacing, with a number due that
    has attempts left."""
    waiting = []
    p = database.param
    for campaign_id, max_channels, max_attempts in limits.peers:
        if per.get(campaign_id, 0) >= max_channels:
            continue
        row = database.execute_sql(
            "SELECT 1 FROM campaign c WHERE c.id = %s AND c.state = %s AND EXISTS (SELECT 1 FROM "
            "number n WHERE n.campaign_id = c.id AND n.status = %s AND n.next_attempt_at <= %s "
            "AND n.attempts < %s) AND NOT EXISTS (SELECT 1 FROM dial_gate g WHERE g.key = %s "
            "AND g.next_at > %s)" % (p, p, p, p, p, p, p),
            (campaign_id, CampaignState.RUNNING.value, NumberStatus.PENDING.value, to_db(now),
             max_attempts, "c:%d" % campaign_id, to_db(at))).fetchone()
        if row is not None:
            waiting.append(campaign_id)
    return waiting


# ---- rows ----------------------------------------------------------------------------------

_IN_FLIGHT = "status IN (%s)" % ", ".join("'%s'" % s for s in IN_FLIGHT_STATUSES)


def in_flight_count(campaign_id):
    """The campaign's attempts in flight (claimed, not ended): what its max_channels caps."""
    return database.execute_sql("SELECT COUNT(*) FROM attempt WHERE campaign_id = %s AND %s" % (
        database.param, _IN_FLIGHT), (campaign_id,)).fetchone()[0]


def _per_campaign_on(server):
    """{campaign id: attempts in flight} on `server`."""
    rows = database.execute_sql(
        "SELECT campaign_id, COUNT(*) FROM attempt WHERE server = %s AND %s GROUP BY campaign_id"
        % (database.param, _IN_FLIGHT), (server,)).fetchall()
    return {cid: n for cid, n in rows}


def _lock(key):
    """Row `key`, locked until the transaction ends on PostgreSQL (created first if missing):
    campaign rows as (next_at, blocked, blocked_at), server rows as (next_at, last_campaign)."""
    p = database.param
    columns = "blocked, blocked_at" if key.startswith("c:") else "last_campaign"
    sql = "SELECT next_at, %s FROM dial_gate WHERE key = %s%s" % (
        columns, p, " FOR UPDATE" if is_postgres() else "")
    row = database.execute_sql(sql, (key,)).fetchone()
    if row is None:
        database.execute_sql("INSERT INTO dial_gate (key) VALUES (%s) ON CONFLICT DO NOTHING"
                             % p, (key,))
        row = database.execute_sql(sql, (key,)).fetchone()
    return row


def _update(key, **fields):
    p = database.param
    database.execute_sql("UPDATE dial_gate SET %s WHERE key = %s" % (
        ", ".join("%s = %s" % (name, p) for name in fields), p), list(fields.values()) + [key])


def _set_blocked(campaign_id, campaign_row, text, now):
    """Keep the campaign row's `blocked` (written when it changes, and refreshed every
    BLOCKED_FRESH_S / 2 while it holds); `campaign_row` as `_lock` read it."""
    _, current, since = campaign_row
    if text is None and current is None:
        return
    key = "c:%d" % campaign_id
    if text is None:
        _update(key, blocked=None, blocked_at=None)
        return
    if text == current and since is not None and (
            to_db(now) - _naive(since)).total_seconds() < BLOCKED_FRESH_S / 2:
        return
    _update(key, blocked=text[:200], blocked_at=to_db(now))


def _naive(value):
    """A stored datetime (SQLite gives text) as naive UTC."""
    return to_db(from_db(value))
