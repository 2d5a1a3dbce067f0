"""What a campaign is doing now, for the dashboard: its calls in flight, its latest attempts and
its calls per minute over the last hours.

Numbers are masked as in the logs (phone.mask) before they leave this module: the dashboard
never holds a whole number of an attempt. Times are shown in the campaign's zone
(clock.show_time). Costs, each one query (EXPLAIN QUERY PLAN checked on SQLite at 1M
attempts): ``live_calls`` reads the in-flight rows through attempt(campaign_id, status) and
sorts only them; ``recent_attempts`` walks attempt(campaign_id) backwards from the latest id
and stops at its limit (models.attempts_in_id_order); ``calls_per_minute`` reads the range
through attempt(campaign_id, created_at) (a covering index: no table row is read). None of
them grows with the campaign's size, only with its calls in flight or in the range.
"""
import datetime as dt

from agi_campaign import phone
from agi_campaign.clock import from_db, show_time, to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.models import IN_FLIGHT_STATUSES, attempts_in_id_order

LIVE_LIMIT = 50
RECENT_LIMIT = 20


def _attempts(campaign_id, extra, params, limit, table="attempt a"):
    p = database.param
    return database.execute_sql(
        "SELECT a.id, n.phone, a.seq, a.server, a.status, a.created_at, a.answered_at, "
        "a.outcome, a.dial_status, a.billsec_s, a.dest_result FROM %s "
        "JOIN number n ON n.id = a.number_id WHERE a.campaign_id = %s%s "
        "ORDER BY a.id DESC LIMIT %s" % (table, p, extra, p),
        [campaign_id, *params, limit]).fetchall()


def _row(row, zone, now):
    (ident, e164, seq, server, status, created, answered, outcome, dial_status, billsec,
     dest) = row
    created = from_db(created)
    placed = show_time(created, zone)
    return {"id": ident, "number": phone.mask(e164), "seq": seq, "server": server,
            "status": status, "placed": placed, "placed_time": placed[11:19],
            "answered": answered is not None or status == "answered",
            "age_s": max(0, int((now - created).total_seconds())), "outcome": outcome,
            "dial_status": dial_status, "talk_s": billsec, "dest_result": dest}


def live_calls(campaign_id, zone, now, limit=LIVE_LIMIT):
    """The campaign's attempts in flight (dialing or answered), newest first, at most
    ``limit``: dicts of id, number (masked), seq, server, status, placed (text in ``zone``),
    placed_time (its HH:MM:SS), answered (bool), age_s (since placed, at ``now``), outcome,
    dial_status, talk_s, dest_result."""
    p = database.param
    rows = _attempts(campaign_id, " AND a.status IN (%s)" % ", ".join(
        [p] * len(IN_FLIGHT_STATUSES)), list(IN_FLIGHT_STATUSES), limit)
    return [_row(r, zone, now) for r in rows]


def recent_attempts(campaign_id, zone, now, limit=RECENT_LIMIT):
    """The campaign's ``limit`` latest attempts, newest first (live_calls's dicts)."""
    return [_row(r, zone, now) for r in _attempts(campaign_id, "", [], limit,
                                                  attempts_in_id_order())]


def calls_per_minute(campaign_id, now, minutes=180, zone="UTC", least=15):
    """Attempts placed in each whole minute up to ``now`` (the current minute last), oldest
    first: ``[(HH:MM in zone, count), ...]``, zeros included, over at most ``minutes`` minutes
    and starting at the first minute with a call in them, but showing at least ``least``
    minutes (a campaign of a few minutes is not a sliver at the edge of three hours)."""
    end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    start = end - dt.timedelta(minutes=minutes)
    p = database.param
    minute = ("to_char(date_trunc('minute', created_at), 'YYYY-MM-DD HH24:MI')"
              if is_postgres() else "strftime('%Y-%m-%d %H:%M', created_at)")
    counts = {}
    for key, count in database.execute_sql(
            "SELECT %s AS m, COUNT(*) FROM attempt WHERE campaign_id = %s AND created_at >= %s "
            "AND created_at < %s GROUP BY m" % (minute, p, p, p),
            [campaign_id, to_db(start), to_db(end)]):
        counts[key] = int(count)
    out = []
    for i in range(minutes):
        at = start + dt.timedelta(minutes=i)
        key = to_db(at).strftime("%Y-%m-%d %H:%M")
        out.append((show_time(at, zone)[11:16], counts.get(key, 0)))
    first = next((i for i, (_, count) in enumerate(out) if count), len(out))
    return out[min(first, max(0, minutes - least)):]
