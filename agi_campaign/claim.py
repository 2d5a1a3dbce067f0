"""Claiming work: take the next N due numbers of a campaign and record their attempts atomically.

The attempt rows are written, and the numbers moved to in_flight, in the same transaction and
*before* any call is placed (state change before side effect). On SQLite the transaction is
IMMEDIATE (one writer at a time, see agi_campaign.db); on PostgreSQL the candidate rows are
locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint numbers.
Numbers found on one of the campaign's Do-Not-Call lists at claim time become `dnc` and are
never dialed: the list may have changed since the import.

Calling hours (`callee_hours`, in the callee's local time): a due number whose hours are closed
in any of its zones (`callee_zones`) is not claimed and uses no attempt: in the same
transaction its next_attempt_at moves to the first instant its hours are open in all its zones
(`weektime.next_open_all`), and it stays pending; the claim goes on with the next due numbers.
Only the database row changes, so "state before side effect" and "never call twice" hold as
before.
"""
import dataclasses
import datetime as _dt
import functools
import json
import secrets
import zoneinfo

import peewee

from agi_campaign import gate, weektime
from agi_campaign.clock import to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.dnc import lists_holding
from agi_campaign.models import AttemptStatus, NumberStatus
from agi_campaign.phone import time_zones

# The `extra` keys (CSV header names, any case) whose valid IANA name overrides a number's zones.
TIMEZONE_COLUMNS = ("timezone", "time_zone", "time zone", "tz")
# Hours never open in all of a number's zones at once (a toll-free number spans the NANP from
# Guam to Pago Pago): it is looked at again this much later (the config may have changed).
NEVER_RECHECK = _dt.timedelta(hours=1)
# One claim defers at most about this many numbers (then returns what it has; the next claim
# goes on): a list whose head is all closed is swept without one long transaction.
MAX_DEFERRED = 1000
_HOURS_BATCH = 100      # rows read a round after the first (a round is one indexed SELECT)


@dataclasses.dataclass(frozen=True)
class Claimed:
    attempt_id: int
    token: str
    number_id: int
    phone: str
    extra: dict
    seq: int


def blocked_phones(phones, dnc_lists):
    """The subset of `phones` (E.164) present on any of `dnc_lists` (none when no lists)."""
    return set(lists_holding(phones, dnc_lists or ()))


@functools.lru_cache(maxsize=1024)
def _known_zone(name):
    try:
        zoneinfo.ZoneInfo(name)
        return True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False


def zone_override(extra):
    """The valid IANA name in a `timezone` column of the number's `extra` (JSON text or dict),
    else None (an unknown name is ignored: the number's own zones apply)."""
    if not extra:
        return None
    if isinstance(extra, str):
        if "z" not in extra.lower():        # no such key: skip parsing the JSON
            return None
        extra = json.loads(extra)
    for key, value in extra.items():
        if (str(key).strip().lower() in TIMEZONE_COLUMNS and isinstance(value, str)
                and value.strip() and _known_zone(value.strip())):
            return value.strip()
    return None


def callee_zones(phone, extra, default_timezone):
    """The zones a number's calling hours are checked in: its `timezone` column when valid,
    else every zone phonenumbers gives for it (`phone.time_zones`) that this host can read
    (the tzdata package is a dependency; one it cannot read adds `default_timezone`), else
    `default_timezone` (the campaign's)."""
    override = zone_override(extra)
    if override is not None:
        return (override,)
    zones = time_zones(phone)
    known = tuple(zone for zone in zones if _known_zone(zone))
    if len(known) < len(zones):         # a zone this host's tz database lacks: the campaign's
        known += (default_timezone,)    # stands in, so one number cannot stop the claim
    return known or (default_timezone,)


class HoursCheck:
    """`callee_hours` at one instant: `opens(zones)` is `now` when open in all of them, else the
    instant they all next are (None: never).

    An answer holds for a while, so it is kept across claims (`_OPENINGS`, per hours and set
    of zones): "open" until the first zone closes, "opens at X" until X (no common open instant
    lies between). One claim of 100 numbers then costs well under a millisecond of checks
    instead of one `next_open_all` per set of zones (about 20 ms for the 42 zones of a NANP
    toll-free number).
    """

    def __init__(self, hours, default_timezone, now):
        self.hours, self.default_timezone, self.now = hours, default_timezone, now

    def zones(self, phone, extra):
        return callee_zones(phone, extra, self.default_timezone)

    def opens(self, zones):
        key = (self.hours, zones)
        known = _OPENINGS.get(key)
        if known is not None and known[0] <= self.now < known[1]:
            return self.now if known[2] is _OPEN else known[2]
        opens = weektime.next_open_all(self.hours, zones, self.now)
        if opens is None:
            until = self.now + NEVER_RECHECK
        elif opens > self.now:
            until = opens
        else:
            closes = [weektime.next_close(self.hours, zone, self.now) for zone in zones]
            until = min((c for c in closes if c is not None), default=_dt.datetime.max.replace(
                tzinfo=_dt.timezone.utc))
        if len(_OPENINGS) >= _OPENINGS_MAX:
            _OPENINGS.clear()
        _OPENINGS[key] = (self.now, until, _OPEN if opens == self.now else opens)
        return opens


_OPEN = object()
_OPENINGS = {}          # (hours, zones) -> (valid from, valid until, opening or _OPEN or None)
_OPENINGS_MAX = 4096


def claim_due(campaign_id, n, now, server, dnc_lists, max_attempts, callee_hours=None,
              timezone="UTC", node=None):
    """Claim up to `n` due numbers of a campaign; returns the attempts to dial, as Claimed.
    No cap is checked here: the engine claims through `claim_gated`.

    `callee_hours` (a WeekTime, or None for no restriction): due numbers outside them in their
    zones (`callee_zones`; `timezone` is the campaign's, for numbers with no known zone) are
    deferred to their next opening, pending, with no attempt used; the claim then reads the
    next due numbers (keyset: after the last row read), until it has `n`, the due numbers run
    out, or it has deferred MAX_DEFERRED. `node`: the claiming node's id, kept on the attempts.

    Plain SQL: building a 100-row INSERT through Peewee cost more than running it (bench/,
    claim of 100: p50 5.5 ms -> 1.7 ms on SQLite). The due query walks the index
    number(campaign, status, next_attempt_at, id) in order, so it costs the same at any size.
    """
    if n <= 0:
        return []
    with database.atomic():
        return _claim(campaign_id, n, now, server, dnc_lists, max_attempts, callee_hours,
                      timezone, node)


def claim_gated(limits, n, clock, dnc_lists, max_attempts, callee_hours=None, timezone="UTC",
                node=None, spacing_clock=None):
    """`claim_due` behind the gate (agi_campaign.gate): in ONE transaction, the caps of
    `limits` (a gate.Limits: campaign and server channels, delay_ms, max_cps, fair share) are
    checked under the gate's locks at the gate's time (gate.admit: the database's clock on
    PostgreSQL, `clock()` on SQLite, read once the locks are held), at most the admitted
    number of the `n` wanted is claimed, stamped with that time, and the starts are recorded
    (`spacing_clock`: gate.admit's). Returns (claimed, Admission). A gate row another node
    held past gate.LOCK_TIMEOUT_MS is Admission `limited_by` "gate busy" (nothing claimed:
    try again), not an error."""
    try:
        with database.atomic():
            admission = gate.admit(limits, n, clock, spacing_clock)
            if admission.allowed <= 0:
                return [], admission
            claimed = _claim(limits.campaign_id, admission.allowed, admission.now,
                             limits.server, dnc_lists, max_attempts, callee_hours, timezone,
                             node)
            if claimed:
                gate.started(limits, admission, len(claimed))
            return claimed, admission
    except peewee.OperationalError as err:
        if not gate.lock_timed_out(err):
            raise
        return [], gate.Admission(0, clock(), "gate busy")


def _claim(campaign_id, n, now, server, dnc_lists, max_attempts, callee_hours, timezone, node):
    """claim_due's work, inside the caller's transaction."""
    stamp = to_db(now)
    hours = HoursCheck(callee_hours, timezone, now) if callee_hours is not None else None
    todo, deferred, after = [], 0, None
    while True:
        want = n - len(todo)
        # the first round reads as many rows as asked, like a claim without hours; the
        # next ones (only after numbers were deferred) read larger batches
        size = want if after is None else max(want, _HOURS_BATCH)
        rows = _due_rows(campaign_id, stamp, max_attempts, size, after)
        blocked = blocked_phones({r[1] for r in rows}, dnc_lists)
        dnc_ids, later, taken = [], {}, 0
        for row in rows:
            if taken == want:
                break
            after = (row[4], row[0])
            if row[1] in blocked:
                dnc_ids.append(row[0])
                continue
            opens = hours.opens(hours.zones(row[1], row[3])) if hours else now
            if opens is None or opens > now:
                later.setdefault(opens, []).append(row[0])
                continue
            todo.append(row)
            taken += 1
        if dnc_ids:
            _set_status(dnc_ids, NumberStatus.DNC, stamp, ", last_outcome = 'dnc'")
        for opens, ids in later.items():
            _defer(ids, opens or now + NEVER_RECHECK, stamp)
            deferred += len(ids)
        if not later or len(rows) < size or len(todo) >= n or deferred >= MAX_DEFERRED:
            break
    if not todo:
        return []
    _set_status([r[0] for r in todo], NumberStatus.IN_FLIGHT, stamp,
                ", attempts = attempts + 1")
    return _new_attempts(todo, campaign_id, server, stamp, node)


_DUE = ("SELECT id, phone, attempts, extra, next_attempt_at FROM number WHERE campaign_id = {p} "
        "AND status = {p} AND next_attempt_at <= {p} AND attempts < {p}{after} "
        "ORDER BY next_attempt_at, id LIMIT {p}")
_AFTER = " AND (next_attempt_at > {p} OR (next_attempt_at = {p} AND id > {p}))"


def _due_rows(campaign_id, stamp, max_attempts, size, after):
    """Due pending rows in claim order, locked on PostgreSQL; `after`: (next_attempt_at, id) of
    the last row a previous round read (the rows it left untouched are not read again)."""
    p = database.param
    params = [campaign_id, NumberStatus.PENDING.value, stamp, max_attempts]
    if after is not None:
        params += [after[0], after[0], after[1]]
    sql = _DUE.format(p=p, after=_AFTER.format(p=p) if after is not None else "")
    return database.execute_sql(
        sql + (" FOR UPDATE SKIP LOCKED" if is_postgres() else ""), params + [size]).fetchall()


def _defer(ids, opens, stamp):
    """Numbers outside their calling hours: due again at `opens`, still pending, no attempt."""
    p = database.param
    database.execute_sql(
        "UPDATE number SET next_attempt_at = %s, updated_at = %s WHERE id IN (%s)"
        % (p, p, ", ".join([p] * len(ids))), [to_db(opens), stamp] + list(ids))


def _set_status(ids, status, stamp, extra_set=""):
    p = database.param
    database.execute_sql(
        "UPDATE number SET status = %s, updated_at = %s%s WHERE id IN (%s)"
        % (p, p, extra_set, ", ".join([p] * len(ids))), [status.value, stamp] + list(ids))


def _new_attempts(rows, campaign_id, server, stamp, node):
    """One multi-row INSERT ... RETURNING for the claimed rows' attempts."""
    p = database.param
    raw = secrets.token_bytes(8 * len(rows))  # one system call for all the tokens, not one each
    tokens = [raw[i:i + 8].hex() for i in range(0, len(raw), 8)]
    values, params = [], []
    for (number_id, _, attempts, _, _), token in zip(rows, tokens):
        values.append("(%s)" % ", ".join([p] * 8))
        params += [number_id, campaign_id, attempts + 1, token, server,
                   AttemptStatus.DIALING.value, stamp, node]
    cursor = database.execute_sql(
        "INSERT INTO attempt (number_id, campaign_id, seq, token, server, status, created_at, "
        "node) "
        "VALUES %s RETURNING id, token" % ", ".join(values), params)
    ids = {token: attempt_id for attempt_id, token in cursor.fetchall()}
    return [Claimed(attempt_id=ids[token], token=token, number_id=number_id, phone=phone,
                    extra=json.loads(extra) if extra and extra != "{}" else {},
                    seq=attempts + 1)
            for (number_id, phone, attempts, extra, _), token in zip(rows, tokens)]
