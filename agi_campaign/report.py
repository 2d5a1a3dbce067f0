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

Costs: three aggregate queries and one pass over the placed attempts' (created_at,
answered_at, billsec_s) in id order (a server-side iterator, so memory does not grow with the
campaign).
"""
import collections
import csv
import datetime as dt
import zoneinfo

from agi_campaign.clock import from_db, iso_as_text, show_time, to_db
from agi_campaign.db import database
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


def outcome_counts(campaign_id, since=None, until=None):
    """(``by_outcome`` of the ended placed attempts, ``refused``, ``in_flight``) in the range:
    one aggregate query (the dashboard's table reads the answer rate from it every second)."""
    where, args = _where(campaign_id, since, until)
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    refused = in_flight = 0
    for outcome, status, count in database.execute_sql(
            "SELECT outcome, status, COUNT(*) FROM attempt WHERE %s GROUP BY outcome, status"
            % where, args):
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
    by_outcome, refused, in_flight = outcome_counts(campaign_id, since, until)
    per_number = [[int(n), int(c)] for n, c in database.execute_sql(
        "SELECT n, COUNT(*) FROM (SELECT number_id, COUNT(*) AS n FROM attempt WHERE %s AND %s "
        "GROUP BY number_id) AS per GROUP BY n ORDER BY n" % (where, placed), args)]
    opt_outs = database.execute_sql("SELECT COUNT(*) FROM attempt WHERE %s AND opted_out = %s"
                                    % (where, database.param), args + [True]).fetchone()[0]
    tz = zoneinfo.ZoneInfo(zone)
    hours = collections.Counter()
    rings, talks = [], []
    rows = database.execute_sql(
        "SELECT created_at, answered_at, billsec_s, outcome FROM attempt WHERE %s AND %s "
        "ORDER BY id" % (where, placed), args)
    for created, answered, billsec, outcome in rows:
        created = from_db(created)
        # the hour's start as a UTC instant: aware datetimes of one zone compare by wall
        # time, which would merge the two 01:00 hours of a change back from summer time
        hour = created.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        hours[hour.astimezone(dt.timezone.utc)] += 1
        if outcome == Outcome.ANSWERED.value:
            if answered is not None:
                rings.append((from_db(answered) - created).total_seconds())
            if billsec is not None:
                talks.append(float(billsec))
    ended = sum(by_outcome.values())
    return {
        "since": show_time(since, zone, iso=True), "until": show_time(until, zone, iso=True),
        "timezone": zone,
        "attempts": {"placed": ended + in_flight, "in_flight": in_flight,
                     "by_outcome": by_outcome, "refused": refused},
        "answer_rate": answer_rate(by_outcome),
        "mean_ring_s": _mean(rings), "mean_talk_s": _mean(talks),
        "calls_per_hour": [[show_time(hour, tz), count] for hour, count in sorted(hours.items())],
        "attempts_per_number": per_number,
        "opt_outs": int(opt_outs),
        "numbers": number_counts(campaign_id),
    }


def _mean(values):
    return round(sum(values) / len(values), 3) if values else None


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
