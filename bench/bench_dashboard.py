"""Benchmark 10: what the dashboard and the report cost on a big campaign: 1,000,000 numbers and
1,000,000 attempts (SQLite, tables filled by SQL; outcomes mixed, calls spread over 10 days up
to now). Every figure is the median of BENCH_DASH_REPEATS runs (after one warm-up) against a
baseline measured in the same run: `SELECT COUNT(*)` of the campaign's attempts (the least a
figure over all attempts can cost).

Rows: report.campaign_report; the same report row by row (`row_by_row_report`, the Python loop
over every attempt that campaign_report was before it counted in SQL, kept here to measure
the change in one run); the four dashboard requests through Starlette's TestClient (the
table poll `/parts/campaigns`, the live part, the campaign page, the report part), each with
the dashboard's cache cold (the first request after the TTL) and warm (the next ones within
it); and, untimed in the ratio, how long create_tables takes to build the index
attempt(campaign_id, created_at) on the 1M attempts (the first start after upgrading).

`PYTHONPATH=<an older checkout> python bench/bench_dashboard.py` measures an older version with
the same script (how bench/RESULTS.md's "before" figures were taken).
"""
import collections
import datetime as dt
import os
import statistics
import time
import types
import zoneinfo

from fastapi.testclient import TestClient

from common import main_for, row  # noqa: E402

from agi_campaign import campaigns, dashboard, report
from agi_campaign.clock import SystemClock, from_db, show_time, to_db
from agi_campaign.config import parse_config
from agi_campaign.db import database
from agi_campaign.models import Outcome, create_tables, open_database

SIZE = int(os.environ.get("BENCH_DASH_ROWS", "1000000"))
REPEATS = int(os.environ.get("BENCH_DASH_REPEATS", "5"))
SPAN_S = 10 * 86400
TOKEN = "bench-dashboard-token-0123456789"
ZONE = "America/New_York"
INDEX = "attempt_campaign_id_created_at"


def fill(campaign_id, now):
    """SIZE numbers (half done, a fifth failed, the rest pending) and one attempt each, placed
    evenly over SPAN_S seconds up to `now`, outcomes in a cycle of five."""
    start = int(now.timestamp()) - SPAN_S
    with database.atomic():
        database.execute_sql(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ? - 1) "
            "INSERT INTO number (campaign_id, phone, raw, status, attempts, next_attempt_at, "
            "extra, updated_at) SELECT ?, printf('+1%03d%03d11%02d', 201 + i / 80000, "
            "200 + (i / 100) % 800, i % 100), 'x', CASE WHEN i % 10 < 5 THEN 'done' WHEN "
            "i % 10 < 7 THEN 'failed' ELSE 'pending' END, 1, ?, '{}', ? FROM s",
            (SIZE, campaign_id, to_db(now), to_db(now)))
        database.execute_sql(
            "INSERT INTO attempt (number_id, campaign_id, seq, token, server, status, outcome, "
            "dial_status, hangup_cause, created_at, answered_at, ended_at, duration_s, "
            "billsec_s, dest_result) SELECT id, campaign_id, 1, 'abcdef0123456789', 'main', "
            "'ended', o, 'ANSWER', 16, c, CASE WHEN o = 'answered' THEN "
            "strftime('%Y-%m-%d %H:%M:%f', c, '+' || (id % 20) || '.25 seconds') END, c, "
            "12.5, CASE WHEN o = 'answered' THEN id % 60 END, 'played' FROM (SELECT id, "
            "campaign_id, CASE id % 5 WHEN 0 THEN 'answered' WHEN 1 THEN 'noanswer' WHEN 2 THEN "
            "'busy' WHEN 3 THEN 'answered' ELSE 'machine' END AS o, "
            "datetime(? + (id - (SELECT MIN(id) FROM number)) * ? / ?, 'unixepoch') AS c "
            "FROM number WHERE campaign_id = ?)", (start, SPAN_S, SIZE, campaign_id))
    database.execute_sql("ANALYZE")


def row_by_row_report(campaign_id, zone):
    """The per-row part of campaign_report as it was (every placed attempt through Python):
    calls per hour and mean ring/talk times; the aggregate queries are report's own."""
    placed = "(outcome IS NULL OR outcome <> 'refused')"
    by_outcome, refused, in_flight = report.outcome_counts(campaign_id)
    tz = zoneinfo.ZoneInfo(zone)
    hours = collections.Counter()
    rings, talks = [], []
    for created, answered, billsec, outcome in database.execute_sql(
            "SELECT created_at, answered_at, billsec_s, outcome FROM attempt WHERE "
            "campaign_id = ? AND %s ORDER BY id" % placed, [campaign_id]):
        created = from_db(created)
        hour = created.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        hours[hour.astimezone(dt.timezone.utc)] += 1
        if outcome == Outcome.ANSWERED.value:
            if answered is not None:
                rings.append((from_db(answered) - created).total_seconds())
            if billsec is not None:
                talks.append(float(billsec))
    return {"by_outcome": by_outcome, "refused": refused, "in_flight": in_flight,
            "mean_ring_s": round(sum(rings) / len(rings), 3) if rings else None,
            "mean_talk_s": round(sum(talks) / len(talks), 3) if talks else None,
            "calls_per_hour": [[show_time(h, tz), c] for h, c in sorted(hours.items())]}


def median_s(fn, repeats=REPEATS, warm=True):
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), times


def run(workdir):
    os.environ["AGI_CAMPAIGN_API_TOKEN"] = TOKEN
    url = "sqlite:///%s" % os.path.join(workdir, "dash.db")
    open_database(url)
    config = parse_config({
        "servers": {"main": {"ami": {"username": "u", "secret": "s"},
                             "dial_template": "Local/{number}@callees"}},
        "http": {},
        "campaigns": {"c1": {"caller_id": "12025550100", "type": "on_demand",
                             "timezone": ZONE, "on_connect": {"type": "message",
                                                              "sounds": ["hello-world"]}}}},
        "bench.yaml")
    clock = SystemClock()
    now = clock.now()
    camp = campaigns.sync_campaigns(config, now)["c1"]
    began = time.perf_counter()
    fill(camp.id, now)
    fill_s = time.perf_counter() - began
    indexes = [r[1] for r in database.execute_sql("PRAGMA index_list(attempt)")]
    index_s = None
    if INDEX in indexes:   # an upgrade: the first start builds the index on 1M attempts
        database.execute_sql("DROP INDEX %s" % INDEX)
        began = time.perf_counter()
        create_tables()
        index_s = time.perf_counter() - began
        assert INDEX in [r[1] for r in database.execute_sql("PRAGMA index_list(attempt)")]
    count = lambda: database.execute_sql(  # noqa: E731
        "SELECT COUNT(*) FROM attempt WHERE campaign_id = ?", [camp.id]).fetchone()
    base, _ = median_s(count)
    ours, ours_all = median_s(lambda: report.campaign_report(camp.id, ZONE))
    got = report.campaign_report(camp.id, ZONE)
    old_fig = row_by_row_report(camp.id, ZONE)
    old, old_all = median_s(lambda: row_by_row_report(camp.id, ZONE), max(1, REPEATS // 2),
                            warm=False)
    same = all(got[k] == old_fig[k] for k in ("mean_ring_s", "mean_talk_s", "calls_per_hour"))
    rows = [
        row("10 dashboard", "report.campaign_report, 1M attempts", ours, base, "s",
            "report", None, note="runs %s; the same by the old per-row loop: %.2f s (%.0fx "
            "ours); figures equal: %s; fill %.0f s" % (
                " ".join("%.2f" % t for t in ours_all), old, old / ours, same, fill_s)),
        row("10 dashboard", "the old per-row report loop, 1M attempts", old, base, "s",
            "report", None, note="runs %s" % " ".join("%.2f" % t for t in old_all)),
    ]
    service = types.SimpleNamespace(config=config, clock=clock)
    with TestClient(dashboard.create_app(service), follow_redirects=False) as client:
        reply = client.post("/login", data={"token": TOKEN})
        assert reply.status_code == 303, reply.status_code
        ttl = getattr(dashboard, "CACHE_MOST_S", 0)   # 0: a version without the cache
        for path in ("/parts/campaigns", "/campaigns/c1/live", "/campaigns/c1",
                     "/campaigns/c1/report"):
            def get(path=path):
                reply = client.get(path)
                assert reply.status_code == 200, (path, reply.status_code)
            cold = []
            for _ in range(max(1, REPEATS // 2 if "report" in path else REPEATS)):
                if "report" not in path:   # the shared figures expired: one poll in 5 s
                    time.sleep(ttl)
                began = time.perf_counter()
                get()
                cold.append(time.perf_counter() - began)
            warm, warm_all = median_s(get)
            cold_s = statistics.median(cold)
            rows.append(row("10 dashboard", "GET %s, cold" % path, cold_s, base, "s",
                            "report", None, note="runs %s; within the cache's %s s: median "
                            "%.3f s (%s)" % (" ".join("%.3f" % t for t in cold), ttl, warm,
                                             " ".join("%.3f" % t for t in warm_all))))
    if index_s is not None:
        rows.append(row("10 dashboard", "create_tables building attempt(campaign_id, "
                        "created_at) on 1M attempts (the first start after upgrading)",
                        index_s, base, "s", "report", None))
    database.close_all()
    return rows


if __name__ == "__main__":
    main_for(run)
