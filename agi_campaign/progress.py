"""What the completion forecast reads from the database: a campaign's Progress.

``read(campaign_id, cfg, now, observe=True)`` -> agi_campaign.forecast.Progress in a few
aggregate queries whose cost does not grow with the numbers settled:

- pending numbers by attempts made, last outcome and when they fall due, in buckets
  (``due_buckets``: due now, then sixteenths of the campaign's longest retry delay, then
  doubling, then hours and days for numbers deferred to their calling hours); a bucket's
  numbers are taken as due at its middle. Those due later are read in full (index
  ``number(campaign, status, next_attempt_at, ...)``, their range only); those due now are
  counted on the index and, beyond ``DUE_SAMPLE``, told apart from samples (``_due``), so a
  million fresh numbers are not all read;
- the attempts in flight (at most about max_channels rows) with their age;
- the last ``SAMPLE`` ended attempts (index ``attempt(campaign, status)``), each with the
  outcome of its number's attempt before it (none for a first attempt).

Measured on SQLite with 1,000,000 pending numbers: 0.2 s when all are due now, 0.6 s while
100,000 wait for a retry (the sample of ended attempts: 20-40 ms).

``forecast_of(row, cfg, now, gap_s, remaining)``: the forecast of a campaign row (what
``status`` and the API show); one in a state without a forecast reads nothing when its count
is given.
"""
import datetime as dt

from agi_campaign import forecast
from agi_campaign.clock import from_db, to_db
from agi_campaign.db import database
from agi_campaign.lifecycle import CampaignState
from agi_campaign.models import IN_FLIGHT_STATUSES, AttemptStatus, NumberStatus

SAMPLE = 2000
DUE_SAMPLE = 20000
S = CampaignState


def due_buckets(cfg):
    """Bucket bounds in seconds after now (ascending, > 0) for pending numbers' due times."""
    longest = max([cfg.retry_delay_s, 1] + [rule.delay_s for rule in cfg.retry])
    bounds = {longest * j / 16.0 for j in range(1, 17)}
    bounds |= {longest * 2.0 ** j for j in range(1, 7)}
    bounds |= {3600.0 * h for h in (1, 6, 24, 48, 96, 192)}
    return sorted(bounds)


def _due(campaign_id, cfg, now):
    """Pending numbers as Progress.due rows: those due later in full (GROUP BY over their
    range of the index), those due now counted on the index and told apart by attempts and
    last outcome exactly up to DUE_SAMPLE of them, else from the DUE_SAMPLE / 2 the claim takes
    first (standing for all but the last) and the DUE_SAMPLE / 2 that fell due last."""
    p = database.param
    stamp = to_db(now)
    bounds = due_buckets(cfg)
    cases = " ".join("WHEN next_attempt_at <= %s THEN %d" % (p, i) for i in range(len(bounds)))
    where = "WHERE campaign_id = %s AND status = %s AND next_attempt_at %s %s"
    pending = (campaign_id, NumberStatus.PENDING.value)
    later = ("SELECT attempts, last_outcome, CASE %s ELSE %d END AS b, COUNT(*) FROM number "
             "%s GROUP BY attempts, last_outcome, b" % (cases, len(bounds), where % (p, p, ">", p)))
    edges = [0.0] + bounds
    out = []
    for attempts, last, bucket, count in database.execute_sql(
            later, [stamp + dt.timedelta(seconds=b) for b in bounds] + list(pending) + [stamp]):
        due_s = (edges[bucket] + edges[bucket + 1]) / 2.0 if bucket < len(bounds) else bounds[-1]
        out.append((int(attempts), last, due_s, int(count)))
    now_where = where % (p, p, "<=", p)
    total = database.execute_sql("SELECT COUNT(*) FROM number " + now_where,
                                 pending + (stamp,)).fetchone()[0]
    if not total:
        return tuple(out)
    group = ("SELECT attempts, last_outcome, COUNT(*) FROM (SELECT attempts, last_outcome FROM "
             "number %s ORDER BY next_attempt_at %s, id %s LIMIT %s) AS d GROUP BY attempts, "
             "last_outcome")
    half = min(total, DUE_SAMPLE) if total <= DUE_SAMPLE else DUE_SAMPLE // 2
    parts = [(half, database.execute_sql(group % (now_where, "", "", p),
                                         pending + (stamp, half)).fetchall())]
    if total > DUE_SAMPLE:
        parts.append((half, database.execute_sql(group % (now_where, "DESC", "DESC", p),
                                                 pending + (stamp, half)).fetchall()))
        parts[0] = (total - half, parts[0][1])   # the head stands for all but the tail
    due_now = {}
    for stands_for, rows in parts:
        seen = sum(n for _, _, n in rows)
        for attempts, last, n in rows:
            key = (int(attempts), last)
            due_now[key] = due_now.get(key, 0.0) + stands_for * n / seen
    out.extend((a, last, 0.0, int(round(n))) for (a, last), n in due_now.items())
    return tuple(out)


def _in_flight(campaign_id, now):
    p = database.param
    sql = ("SELECT a.seq, n.last_outcome, a.created_at, a.status FROM attempt a JOIN number n "
           "ON n.id = a.number_id WHERE a.campaign_id = %s AND a.status IN (%s)"
           % (p, ", ".join(p for _ in IN_FLIGHT_STATUSES)))
    return tuple((int(seq) - 1, last, _age(now, created), status == AttemptStatus.ANSWERED.value)
                 for seq, last, created, status in database.execute_sql(
                     sql, (campaign_id,) + tuple(IN_FLIGHT_STATUSES)))


def _age(now, stored):
    return max((now - from_db(stored)).total_seconds(), 0.0)


def _observed(campaign_id, now):
    p = database.param
    # (the outcome test keeps attempts in flight out; a status test here made SQLite search
    # the status index instead of number_id's)
    sql = ("SELECT CASE WHEN s.seq = 1 THEN NULL ELSE "
           "(SELECT b.outcome FROM attempt b WHERE b.number_id = s.number_id AND b.id < s.id "
           "AND b.outcome <> 'refused' ORDER BY b.id DESC LIMIT 1) END, "
           "s.outcome, s.duration_s, s.created_at "
           "FROM (SELECT id, number_id, seq, outcome, duration_s, created_at FROM attempt "
           "WHERE campaign_id = %s AND status = 'ended' AND outcome <> 'refused' "
           "ORDER BY id DESC LIMIT %s) AS s" % (p, p))
    return tuple((prev, outcome, float(duration or 0.0), _age(now, created))
                 for prev, outcome, duration, created in database.execute_sql(
                     sql, (campaign_id, SAMPLE)))


def read(campaign_id, cfg, now, observe=True):
    """The Progress of a campaign (``observe=False``: without the sample of ended attempts,
    for a campaign whose forecast does not need one)."""
    return forecast.Progress(due=_due(campaign_id, cfg, now),
                             in_flight=_in_flight(campaign_id, now),
                             observed=_observed(campaign_id, now) if observe else ())


def forecast_of(row, cfg, now, gap_s=forecast.DEFAULT_GAP_S, remaining=None):
    """forecast.forecast of Campaign ``row`` with its config ``cfg`` at ``now``; ``gap_s``:
    half the service's tick (a freed channel waits for the next tick). ``remaining``: its
    pending numbers plus attempts in flight, when the caller has counted them (status has): a
    campaign that gets no forecast in its state (PAUSED, COMPLETED, an on-demand READY), whose
    forecast says only that and how many are left, is then answered from that count instead of
    reading its Progress."""
    state = S(row.state)
    wanted = state in (S.RUNNING, S.STARTNOW) or (state == S.READY and cfg.type == "scheduled")
    if wanted or remaining is None:
        counted = read(row.id, cfg, now, observe=wanted)
    else:
        counted = forecast.Progress(due=((0, None, 0.0, remaining),))
    return forecast.forecast(cfg, row.state, counted, now, gap_s=gap_s)
