"""`agi-campaign report`: what a campaign's calls came to, from the attempts table.

`campaign_report(campaign_id, zone, since=None, until=None)` -> dict (JSON-ready). The range
selects attempts *placed* (created_at) in [since, until); None is open. Refused attempts
(Asterisk refused the Originate: no call was placed) are counted apart and nowhere else.

- ``attempts``: placed attempts in the range, ``in_flight`` (not ended yet), ``by_outcome``
  (every Outcome but refused, 0 when none), ``refused``.
- ``answer_rate``: answered / ended placed attempts (None when none ended); a machine that
  AMD hung up on is not answered.
- ``mean_ring_s``: over answered attempts, from the claim (just before the Originate) to the
  answer; ``mean_talk_s``: their mean billsec (Asterisk's ANSWEREDTIME). None when none.
- ``calls_per_hour``: placed attempts per hour of the campaign's time zone, as
  [[hour start text, count], ...] in time order (`clock.show_time`, so the offset shows DST).
- ``attempts_per_number``: [[placed attempts, numbers], ...] ascending, over the numbers with a
  placed attempt in the range (how many calls a number needed).
- ``opt_outs``: attempts whose callee pressed the opt-out key.
- ``numbers``: the campaign's numbers by status now (not ranged: a number's status is current).

Costs: every figure is an aggregate computed by the database (three queries, plus
status.number_counts); no attempt row comes into Python, so the report holds the GIL of the
service's process (FastAGI, the scheduler) only for a few rows of results. Calls per hour are
counted in SQL by 15-minute UTC buckets and folded into the zone's hours in Python
(`local_hours`); ring times are summed as whole microseconds (exact on both databases). On
SQLite every query reads the campaign's rows through attempt(campaign_id, created_at) (EXPLAIN
QUERY PLAN; a range is a range of that index). On 1M attempts the report is about 7 s of
SQLite, during which sqlite3 releases the GIL; the per-row loop it replaced took 17-20 s of
Python in the service's process (bench/bench_dashboard.py, bench/RESULTS.md).
"""
import collections
import csv
import datetime as dt
import sqlite3
import zoneinfo

from agi_campaign.clock import iso_as_text, show_time, to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.errors import UsageError
from agi_campaign.models import Outcome
from agi_campaign.status import number_counts

OUTCOMES = tuple(o.value for o in Outcome if o is not Outcome.REFUSED)


def _where(campaign_id, since, until):
    p = database.param
    sql, args = "campaign_id = %s" % p, [campaign_id]
    if since is not None:
        sql += " AND created_at >= %s" % p
        args.append(to_db(since))
    if until is not None:
        sql += " AND created_at < %s" % p
        args.append(to_db(until))
    return sql, args


def time_range(since, until, zone, names=("--since", "--until")):
    """``(since, until)`` as aware datetimes (None when the text is None or empty) from ISO
    8601 texts; a date, or a time without an offset, is in ``zone``. UsageError naming the
    option (``names``) when a text is not a time or ``until`` is not after ``since``."""
    values = [_parse_time(text, name, zone) for text, name in zip((since, until), names)]
    if None not in values and values[1] <= values[0]:
        raise UsageError("%s %s is not after %s %s; give a later %s"
                         % (names[1], until, names[0], since, names[1]))
    return tuple(values)


def _parse_time(text, name, zone):
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError("%s %r is not an ISO 8601 time; give e.g. 2026-12-01 or "
                         "2026-12-01T09:00 (the campaign's timezone %s) or 2026-12-01T09:00+01:00"
                         % (name, text, zone)) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    try:
        value.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        raise UsageError("%s %r is out of range; give a time like 2026-12-01T09:00+01:00"
                         % (name, text)) from None
    return value


def outcome_counts(campaign_id, since=None, until=None):
    """(``by_outcome`` of the ended placed attempts, ``refused``, ``in_flight``) in the range:
    one aggregate query (the dashboard's table reads its answer rate from it, shared by every
    client: dashboard.SharedFigures)."""
    where, args = _where(campaign_id, since, until)
    return _fold(database.execute_sql(
        "SELECT outcome, status, COUNT(*) FROM attempt WHERE %s GROUP BY outcome, status"
        % where, args))


def _fold(rows):
    """outcome_counts's triple from rows of (outcome, status, count)."""
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    refused = in_flight = 0
    for outcome, status, count in rows:
        if outcome == Outcome.REFUSED.value:
            refused += count
        elif status != "ended":
            in_flight += count
        elif outcome is not None:
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
    return by_outcome, refused, in_flight


def answer_rate(by_outcome):
    """Answered / ended placed attempts, to 4 places (None when none ended)."""
    ended = sum(by_outcome.values())
    return round(by_outcome[Outcome.ANSWERED.value] / ended, 4) if ended else None


def campaign_report(campaign_id, zone, since=None, until=None):
    """The report of the module docstring (times aware; `zone` an IANA name)."""
    where, args = _where(campaign_id, since, until)
    placed = "(outcome IS NULL OR outcome <> 'refused')"
    rows = _outcome_sums(where, args)
    by_outcome, refused, in_flight = _fold(r[:3] for r in rows)
    opt_outs, ring_us, rings, talk_s, talks = (sum(r[k] or 0 for r in rows) for k in range(3, 8))
    per_number = [[int(n), int(c)] for n, c in database.execute_sql(
        "SELECT n, COUNT(*) FROM (SELECT number_id, COUNT(*) AS n FROM attempt WHERE %s AND %s "
        "GROUP BY number_id) AS per GROUP BY n ORDER BY n" % (where, placed), args)]
    tz = zoneinfo.ZoneInfo(zone)
    hours = local_hours(_buckets(where, placed, args), tz)
    ended = sum(by_outcome.values())
    return {
        "since": show_time(since, zone, iso=True), "until": show_time(until, zone, iso=True),
        "timezone": zone,
        "attempts": {"placed": ended + in_flight, "in_flight": in_flight,
                     "by_outcome": by_outcome, "refused": refused},
        "answer_rate": answer_rate(by_outcome),
        "mean_ring_s": _mean(int(ring_us) / 1e6, rings), "mean_talk_s": _mean(talk_s, talks),
        "calls_per_hour": hours,
        "attempts_per_number": per_number,
        "opt_outs": int(opt_outs),
        "numbers": number_counts(campaign_id),
    }


def _mean(total, count):
    return round(float(total) / count, 3) if count else None


def _seconds_sql(column):
    """SQL for the stored UTC time `column` as whole seconds since 1970 (the stored text on
    SQLite: clock.to_db's naive UTC datetime as `YYYY-MM-DD HH:MM:SS[.ffffff]`)."""
    if is_postgres():
        return "CAST(FLOOR(EXTRACT(EPOCH FROM %s)) AS BIGINT)" % column
    # without the fraction: SQLite rounds it to milliseconds first (59.9999 s would count as
    # the next second); unixepoch (SQLite 3.38+) is twice as fast as strftime('%s')
    if sqlite3.sqlite_version_info >= (3, 38):
        return "unixepoch(substr(%s, 1, 19))" % column
    return "CAST(strftime('%%s', substr(%s, 1, 19)) AS INTEGER)" % column


def _micros_sql(column):
    """SQL for the microseconds of the stored time `column` (0..999999): exact integers, so
    that a sum of differences is exact and the mean rounds as the old per-row sum did."""
    if is_postgres():
        return "MOD(CAST(EXTRACT(MICROSECONDS FROM %s) AS BIGINT), 1000000)" % column
    # the text has no fraction when the microseconds are 0 (and other writers may store fewer
    # than 6 digits): pad with zeros so that substr finds 6 digits
    return "CAST(substr(%s || '000000', 21, 6) AS INTEGER)" % column


def _outcome_sums(where, args):
    """Rows of (outcome, status, attempts, opt-outs, sum of ring times in microseconds,
    answered attempts with an answer time, sum of billsec, answered attempts with a billsec)
    over the attempts in the range: one aggregate query, one pass over the rows. Ring and talk
    times count answered attempts only; ring time is from created_at (the claim) to
    answered_at."""
    ring = "(%s - %s) * 1000000 + %s - %s" % (
        _seconds_sql("answered_at"), _seconds_sql("created_at"), _micros_sql("answered_at"),
        _micros_sql("created_at"))
    answered = "CASE WHEN outcome = 'answered' THEN %s END"
    return [tuple(r) for r in database.execute_sql(
        "SELECT outcome, status, COUNT(*), SUM(CASE WHEN opted_out THEN 1 ELSE 0 END), "
        "SUM(%s), COUNT(%s), SUM(%s), COUNT(%s) FROM attempt WHERE %s GROUP BY outcome, status"
        % (answered % ring, answered % "answered_at", answered % "billsec_s",
           answered % "billsec_s", where), args)]


BUCKET_S = 900   # every real UTC offset (and every time of a change) is a multiple of 15 min


def _buckets(where, placed, args):
    """[(start of a 15-minute UTC bucket as seconds since 1970, placed attempts in it)]."""
    bucket = "%s / %d" % (_seconds_sql("created_at"), BUCKET_S)
    return [(int(b) * BUCKET_S, int(c)) for b, c in database.execute_sql(
        "SELECT %s AS b, COUNT(*) FROM attempt WHERE %s AND %s GROUP BY b"
        % (bucket, where, placed), args)]


def local_hours(buckets, tz):
    """``[[hour start text, count], ...]`` in time order: ``buckets`` of
    [(UTC seconds since 1970 of a 15-minute bucket, count)] folded into the hours of zone `tz`.

    A bucket lies inside one local hour because every UTC offset in use and every instant of
    a change is a whole multiple of 15 minutes (India +05:30, Nepal +05:45, Lord Howe's half
    hour of DST included; only local mean times before ~1980 are not, and no call is dated
    then). Hours are keyed by their start as a UTC instant: aware datetimes of one zone compare
    by wall time, which would merge the two 01:00 hours of a change back from summer time.
    Pure: no I/O."""
    hours = collections.Counter()
    for start, count in buckets:
        local = dt.datetime.fromtimestamp(start, dt.timezone.utc).astimezone(tz)
        hour = local.replace(minute=0, second=0, microsecond=0)
        hours[hour.astimezone(dt.timezone.utc)] += count
    return [[show_time(hour, tz), count] for hour, count in sorted(hours.items())]


def render(name, report):
    """The report as text for a person."""
    a = report["attempts"]
    span = "%s to %s" % (iso_as_text(report["since"]) or "the first call",
                         iso_as_text(report["until"]) or "now")
    lines = ["%s: calls placed from %s (times in %s)" % (name, span, report["timezone"])]
    lines.append("  attempts placed %d (in flight %d; refused by Asterisk, not placed %d)"
                 % (a["placed"], a["in_flight"], a["refused"]))
    lines.append("  by outcome: " + (", ".join("%s %d" % kv for kv in a["by_outcome"].items()
                                              if kv[1]) or "none"))
    lines.append("  answer rate %s; mean ring %s; mean talk %s; opt-outs %d" % (
        "-" if report["answer_rate"] is None else "%.1f %%" % (100 * report["answer_rate"]),
        _seconds(report["mean_ring_s"]), _seconds(report["mean_talk_s"]), report["opt_outs"]))
    lines.append("  attempts per number: " + (", ".join(
        "%d call%s: %d" % (n, "" if n == 1 else "s", c)
        for n, c in report["attempts_per_number"]) or "none"))
    n = report["numbers"]
    lines.append("  numbers now: " + ", ".join("%s %d" % (k, v) for k, v in n.items()))
    lines.append("  calls per hour:" + ("" if report["calls_per_hour"] else " none"))
    lines += ["    %s  %d" % (hour, count) for hour, count in report["calls_per_hour"]]
    return "\n".join(lines)


def _seconds(value):
    return "-" if value is None else "%.1f s" % value


def write_csv(report, out):
    """The report as `section,key,value` rows (one figure a row) on the text stream `out`."""
    w = csv.writer(out)
    w.writerow(["section", "key", "value"])
    a = report["attempts"]
    for key in ("placed", "in_flight", "refused"):
        w.writerow(["attempts", key, a[key]])
    for outcome, count in a["by_outcome"].items():
        w.writerow(["outcome", outcome, count])
    for key in ("answer_rate", "mean_ring_s", "mean_talk_s", "opt_outs"):
        w.writerow(["summary", key, "" if report[key] is None else report[key]])
    for n, c in report["attempts_per_number"]:
        w.writerow(["attempts_per_number", n, c])
    for status, c in report["numbers"].items():
        w.writerow(["numbers", status, c])
    for hour, c in report["calls_per_hour"]:
        w.writerow(["calls_per_hour", hour, c])
