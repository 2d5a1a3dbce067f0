"""Benchmark 11: capacity with several nodes on one PostgreSQL database (issue 14), and one
node's capacity with the real service and Asterisk.

a. Claim throughput vs nodes. N = 1, 2, 3 OS processes (spawned, each with its own
   connection, as nodes are) run `claim.claim_gated(limits, WANT, ...)` in a loop for
   BENCH_NODES_SECONDS (10) each setting, on PostgreSQL. Each process ends the attempts it
   claimed END_AFTER_S later (attempt ended, number done: in-flight counts stay bounded, as
   when calls end). Two workloads:
   - "4 campaigns": 4 campaigns of 100,000 numbers, 2 per server; each server has a
     max_channels (100,000: never binds), so every claim locks its campaign's gate row and then
     its server's (and reads the fair share's peer); campaign max_channels 1,000 (never binds:
     about rate x END_AFTER_S are in flight). Each process claims for the 4 in turn.
   - "1 campaign": every process claims for the same campaign: every claim queues on one
     campaign row and one server row (the worst case).
   The baseline is the 1-process figure of the same workload; also measured, in the same run,
   the pre-gate `claim_due` (no gate rows, no counts) in one process: the gate's own cost.
   Against a drifting load, each setting runs in two halves ordered 1, 2, 3, 3, 2, 1
   processes; the claim_due baseline runs before and after them (the better run counts).
   Reported: claims/s and calls claimed/s (all processes), the N/1 ratio, claim latency p50/p99.
   All processes and PostgreSQL share this machine's cores: the ratio shows how the row locks
   and the CPU bound together here, not what nodes on their own hosts would reach.
b. One node with the real service (`agi-campaign run`, child process) and the Asterisk
   sandbox: the calls completed/s of benchmark 1 (bench_dial.ours, BENCH_NODES_DIAL_CALLS
   answering callees with the 20 ms message, 200 in flight) on PostgreSQL against the same on
   SQLite in this run (benchmark 1 compares SQLite with raw AMI loops); and the concurrent calls
   one node sustains: a campaign with max_channels 300 whose BENCH_NODES_HOLD_CALLS callees
   answer and stay 9 s; the peak and the mean of callee legs up on Asterisk
   (harness.ChannelMonitor) from the first start to the last (while numbers are due), against
   max_channels, on SQLite and on PostgreSQL, with the time from the first start to the peak
   and the mean after it. On PostgreSQL also: the most connections the database had during
   the run (pg_stat_activity every 0.2 s) and the calls whose `connect` session failed because
   the server refused a connection ("too many clients" in the service's log).
"""
import contextlib
import multiprocessing
import os
import re
import threading
import time

import peewee
import psycopg2

from common import PG_ADMIN_DSN, main_for, percentile, row  # noqa: E402

from agi_campaign import campaigns
from agi_campaign.claim import claim_due, claim_gated
from agi_campaign.clock import SystemClock, to_db
from agi_campaign.config import load_config
from agi_campaign.db import database
from agi_campaign.gate import Limits
from agi_campaign.models import open_database
from agi_campaign.testing import harness
from agi_campaign.testing.process import ServiceProcess

import bench_dial
import sandbox_env
from bench_claim import fill, pg_admin
from bench_pacing import wait_completed

SECONDS = float(os.environ.get("BENCH_NODES_SECONDS", "10"))
NODES = (1, 2, 3)
SIZE = 100_000
WANT = 10            # calls asked per claim (the engine asks for its free channels)
END_AFTER_S = 0.2    # a claimed attempt ends this long after its claim (in flight: ~rate x 0.3 s)
CAMPAIGN_MAX = 1000
MAX_ATTEMPTS = 3
SERVER_MAX = 100_000
DIAL_CALLS = int(os.environ.get("BENCH_NODES_DIAL_CALLS", "2000"))
HOLD_CALLS = int(os.environ.get("BENCH_NODES_HOLD_CALLS", "900"))
HOLD_MAX = 300
HOLD_S = 9
PG_CLAIM_DB = "acamp_bench_nodes"
PG_SERVICE_DB = "acamp_bench_nodes_svc"


def pg_url(dbname):
    return "postgresql://postgres@127.0.0.1:5432/" + dbname


def fresh_pg(dbname):
    pg_admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % dbname)
    pg_admin("CREATE DATABASE %s" % dbname)


# ---- a. claim throughput vs nodes ------------------------------------------------------------

def claim_worker(url, limits_list, gated, node, seconds, ready, results):
    """One node: connect, wait at the barrier `ready`, then claim in a loop for `seconds`,
    ending its attempts END_AFTER_S after their claim; puts (claims, calls, latencies in ms,
    lock timeouts, empty claims) on `results`."""
    open_database(url, create=False)
    clock = SystemClock()
    claims = calls = errors = empty = 0
    latencies, held = [], []  # held: (claimed at, attempt ids, number ids)
    i = node
    with database.connection_context():
        database.execute_sql("SELECT 1")
        ready.wait()
        deadline = last_end = time.monotonic()
        deadline += seconds
        while time.monotonic() < deadline:
            limits = limits_list[i % len(limits_list)]
            i += 1
            began = time.perf_counter()
            try:
                if gated:
                    claimed, admission = claim_gated(limits, WANT, clock.now, ("blocked",),
                                                     MAX_ATTEMPTS, node=node)
                    if admission.limited_by == "gate busy":  # a lock wait over the timeout
                        errors += 1
                        continue
                else:
                    claimed = claim_due(limits.campaign_id, WANT, clock.now(), limits.server,
                                        ("blocked",), 3, node=node)
            except peewee.DatabaseError:  # a lock wait over gate.LOCK_TIMEOUT_MS
                errors += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            claims += 1
            calls += len(claimed)
            empty += not claimed
            now_m = time.monotonic()
            if claimed:
                held.append((now_m, [c.attempt_id for c in claimed],
                             [c.number_id for c in claimed]))
            if now_m - last_end >= 0.1:
                last_end = now_m
                held = end_attempts(held, now_m - END_AFTER_S, clock)
        end_attempts(held, float("inf"), clock)
    results.put((claims, calls, latencies, errors, empty))


def end_attempts(held, before, clock):
    """End the attempts claimed before monotonic time `before` (one transaction); returns the
    rest."""
    due = [h for h in held if h[0] <= before]
    if not due:
        return held
    attempts = ",".join(str(a) for h in due for a in h[1])
    numbers = ",".join(str(n) for h in due for n in h[2])
    stamp = to_db(clock.now())
    with database.atomic():
        database.execute_sql("UPDATE attempt SET status = 'ended', outcome = 'answered', "
                             "ended_at = %%s WHERE id IN (%s)" % attempts, (stamp,))
        database.execute_sql("UPDATE number SET status = 'done', updated_at = %%s "
                             "WHERE id IN (%s)" % numbers, (stamp,))
    return [h for h in held if h[0] > before]


def run_nodes(url, limits_list, nodes, seconds, gated=True):
    """Run `nodes` claiming processes at once for `seconds`; returns their raw figures."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(nodes + 1), ctx.Queue()
    procs = [ctx.Process(target=claim_worker, args=(url, limits_list, gated, k + 1, seconds,
                                                    ready, results)) for k in range(nodes)]
    for proc in procs:
        proc.start()
    ready.wait(timeout=120)
    got = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(30)
    return got


def merge(runs, seconds):
    """Figures of several runs of one setting (lists of run_nodes results), `seconds` in all."""
    got = [g for run in runs for g in run]
    latencies = [ms for g in got for ms in g[2]]
    return {"claims_s": sum(g[0] for g in got) / seconds,
            "calls_s": sum(g[1] for g in got) / seconds,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "errors": sum(g[3] for g in got), "empty": sum(g[4] for g in got)}


def claim_rows(url):
    """Part a. The machine is shared and its load drifts: each setting runs in two halves,
    ordered 1, 2, 3, 3, 2, 1 processes, so that drift favours no N; the claim_due baseline runs
    before and after them, the better run counts."""
    open_database(url)
    now_db = to_db(SystemClock().now())
    began = time.monotonic()
    ids = [fill(SIZE, "n%d" % k, k * 10_000_000, now_db, True) for k in range(4)]
    database.execute_sql("ANALYZE")
    build_s = time.monotonic() - began
    database.close_all()

    def limits(k):
        server = "s%d" % (k // 2 + 1)
        return Limits(campaign_id=ids[k], max_channels=CAMPAIGN_MAX, delay_ms=0, server=server,
                      server_max_channels=SERVER_MAX,
                      peers=((ids[k ^ 1], CAMPAIGN_MAX, MAX_ATTEMPTS),))

    four = [limits(k) for k in range(4)]
    half = SECONDS / 2
    bases = [merge([run_nodes(url, [four[3]], 1, half, gated=False)], half)]
    workloads = (("4 campaigns", four), ("1 campaign", four[:1]))
    figures = {}
    for label, work in workloads:
        runs = {n: [] for n in NODES}
        for n in NODES + NODES[::-1]:
            runs[n].append(run_nodes(url, work, n, half))
        figures[label] = {n: merge(runs[n], SECONDS) for n in NODES}
    bases.append(merge([run_nodes(url, [four[3]], 1, half, gated=False)], half))
    base = max(bases, key=lambda b: b["claims_s"])
    one = figures["4 campaigns"][1]
    rows = [row("11 nodes: claims", "claim_gated of %d, 1 node vs claim_due (no gate)" % WANT,
                one["claims_s"], base["claims_s"], "claims/s", "(diagnosis)", None,
                note="claim_due alone: %.0f and %.0f claims/s (before, after), %.0f calls/s, "
                     "p50 %.2f ms, p99 %.2f ms; PostgreSQL, %d campaigns of %d numbers built "
                     "in %.0f s" % (bases[0]["claims_s"], bases[1]["claims_s"], base["calls_s"],
                                    base["p50"], base["p99"], len(ids), SIZE, build_s))]
    for label, _ in workloads:
        for n in NODES:
            f = figures[label][n]
            rows.append(row(
                "11 nodes: claims, %s" % label, "%d node(s) vs 1: claims/s" % n, f["claims_s"],
                figures[label][1]["claims_s"], "claims/s", "report", None,
                note="%.0f calls/s; claim p50 %.2f ms, p99 %.2f ms; %d lock timeouts, %d "
                     "empty claims" % (f["calls_s"], f["p50"], f["p99"], f["errors"],
                                       f["empty"])))
    return rows


# ---- b. one node with the real service -------------------------------------------------------

class PgConnections:
    """While entered, samples every 0.2 s how many connections database `dbname` has
    (pg_stat_activity, from an admin connection of its own); `peak` is the most seen."""

    def __init__(self, dbname):
        self.dbname, self.peak = dbname, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self._stop.wait(0.2):
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                (self.dbname,))
                    self.peak = max(self.peak, cur.fetchone()[0])
        finally:
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def refused_connects(log_path):
    """`connect` sessions of a service log that failed because PostgreSQL refused a connection
    (max_connections): the callee answered and heard nothing. A log record is a line that
    starts with a timestamp and the traceback lines after it."""
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", fh.read())
    return sum("handler crashed script=connect" in r and "too many clients" in r
               for r in records)


def hold_concurrency(box, workdir, db_url=None, connections=contextlib.nullcontext()):
    """Callee legs up on Asterisk while one service dials HOLD_CALLS callees that stay HOLD_S,
    max_channels HOLD_MAX: {peak, mean (from the first start to the last), window_s, calls
    (callee legs seen), drops (times the monitor lost its AMI session: legs of the gap are
    missed), ramp_s (first start to the peak), mean_after_ramp}; `connections` is entered
    while it dials."""
    os.makedirs(workdir, exist_ok=True)
    cfgs = {"hold": sandbox_env.campaign(
        box, max_channels=HOLD_MAX, delay_ms=0, dial_timeout_s=15,
        on_connect={"type": "message", "sounds": ["silence/10"]})}
    path, port, db_url = sandbox_env.write_service_config(workdir, box, cfgs, db_url=db_url)
    open_database(db_url)
    clock = SystemClock()
    rows = campaigns.sync_campaigns(load_config(str(path)), clock.now())
    phones = ["+" + harness.callee_number(i, "answer", hold_s=HOLD_S)[1:]
              for i in range(HOLD_CALLS)]
    sandbox_env.insert_numbers(rows["hold"].id, phones, to_db(clock.now()))
    service = ServiceProcess(path, "%s/service.log" % workdir, port).start()
    try:
        with harness.ChannelMonitor(box) as mon, sandbox_env.LiveSampler(mon) as sampler, \
                connections:
            time.sleep(2.5)  # the engine's AMI settle delay
            campaigns.apply_command("hold", "start", clock.now())
            wait_completed("hold", 60 + HOLD_CALLS * HOLD_S / HOLD_MAX * 3, service)
            starts, peak, drops = list(mon.start_times), mon.peak, mon.drops
    finally:
        service.stop(graceful=True)
    database.close_all()
    sandbox_env.wait_idle(box)
    window = sampler.between(starts[0], starts[-1])
    full = next((t for t, n in sampler.samples if n >= peak), starts[-1])
    after = sampler.between(full, starts[-1]) or [peak]
    return {"peak": peak, "mean": sum(window) / len(window), "window_s": starts[-1] - starts[0],
            "calls": len(starts), "drops": drops, "ramp_s": full - starts[0],
            "mean_after_ramp": sum(after) / len(after)}


def service_rows(workdir):
    rows = []
    box = sandbox_env.start_sandbox()
    try:
        dial_dirs = [os.path.join(workdir, d) for d in ("dial-sqlite", "dial-pg")]
        for folder in dial_dirs:
            os.makedirs(folder, exist_ok=True)
        sqlite_rate, answered_s, total_s = bench_dial.ours(box, dial_dirs[0], DIAL_CALLS)
        database.close_all()
        fresh_pg(PG_SERVICE_DB)
        dial_connections = PgConnections(PG_SERVICE_DB)
        pg_rate, answered_p, total_p = bench_dial.ours(
            box, dial_dirs[1], DIAL_CALLS, db_url=pg_url(PG_SERVICE_DB),
            during=lambda: dial_connections)
        database.close_all()
        rows.append(row("11 nodes: one node", "calls completed/s, PostgreSQL vs SQLite",
                        pg_rate, sqlite_rate, "calls/s", "report", None,
                        note="benchmark 1's measure, %d calls each, 200 in flight; answered "
                             "%d/%d (SQLite), %d/%d (PostgreSQL); PostgreSQL: at most %d "
                             "connections to the database (the service's and the benchmark's "
                             "1); %d calls lost their connect session to 'too many clients'" % (
                                 DIAL_CALLS, answered_s, total_s, answered_p, total_p,
                                 dial_connections.peak,
                                 refused_connects(os.path.join(dial_dirs[1], "service.log")))))
        for label, url in (("SQLite", None), ("PostgreSQL", pg_url(PG_SERVICE_DB))):
            connections = contextlib.nullcontext()
            if url:
                fresh_pg(PG_SERVICE_DB)
                connections = PgConnections(PG_SERVICE_DB)
            where = os.path.join(workdir, "hold-" + label.lower())
            got = hold_concurrency(box, where, url, connections)
            extra = ""
            if url:
                extra = ("; at most %d connections to the database (the service's and the "
                         "benchmark's 1); %d calls lost their connect session to 'too many "
                         "clients'" % (connections.peak, refused_connects(
                             os.path.join(where, "service.log"))))
            rows.append(row("11 nodes: one node %s" % label,
                            "peak concurrent calls (Asterisk) vs max_channels", got["peak"],
                            HOLD_MAX, "calls", "<= cap", got["peak"] <= HOLD_MAX,
                            note="%d of %d callees seen, holding %d s; the monitor's AMI "
                                 "session dropped %d times%s" % (got["calls"], HOLD_CALLS, HOLD_S,
                                                                got["drops"], extra)))
            rows.append(row("11 nodes: one node %s" % label,
                            "mean concurrent calls while numbers are due vs max_channels",
                            got["mean"], HOLD_MAX, "calls", "report", None,
                            note="%.1f s from the first start to the last; %.1f s from the first "
                                 "start to the peak, mean %.0f after it" % (
                                     got["window_s"], got["ramp_s"], got["mean_after_ramp"])))
    finally:
        box.stop()
        pg_admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % PG_SERVICE_DB)
    return rows


def run(workdir):
    try:
        fresh_pg(PG_CLAIM_DB)
    except Exception as err:  # noqa: BLE001  boundary: no PostgreSQL is a stated gap
        return [row("11 nodes", "not run", None, None, "", "", False,
                    note="PostgreSQL not reachable: %s" % err)]
    try:
        rows = claim_rows(pg_url(PG_CLAIM_DB))
    finally:
        pg_admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % PG_CLAIM_DB)
    rows += service_rows(workdir)
    for r in rows:
        print("FIGURES %s | %s: %s %s (baseline %s, ratio %s) %s" % (
            r["bench"], r["metric"], r["ours"], r["unit"], r["baseline"], r["ratio"],
            r["note"]), flush=True)
    return rows


if __name__ == "__main__":
    main_for(run)
