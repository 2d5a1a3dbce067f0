"""Benchmark 8: peak RSS (VmHWM) of `agi-campaign run` while its HTTP API streams the attempts
CSV (GET /api/v1/campaigns/<name>/attempts.csv) of a 1,000,000-attempt table vs a 100,000-attempt
one (and a 1,000-attempt one in the note). The export holds one page (1,000 rows) at a time;
what grows from 1k to 100k to 1M rows is bounded: SQLite's page cache (8 MB a pooled
connection; pages may be read on more than one) and the allocator's per-thread arenas of the
server's worker threads. Measured on 2 busy cores: 69 MB (1k), 80 MB (100k), 90-92 MB (1M),
95 MB (3M, a one-off run), from 66 MB before the export. The numbers and attempts are inserted with SQL; the service is a child process, read from
/proc/<pid>/status; the client (httpx) counts the streamed bytes and rows without keeping them."""
import os
import sqlite3
import time

import httpx

from common import main_for, row  # noqa: E402

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock, to_db
from agi_campaign.config import load_config
from agi_campaign.db import database
from agi_campaign.models import open_database
from agi_campaign.testing import harness
from agi_campaign.testing.process import ServiceProcess, wait_port
from agi_campaign.testing.sandbox import free_port

import common
import sandbox_env

SIZES = (1_000, 100_000, 1_000_000)
TOKEN_ENV = "AGI_CAMPAIGN_BENCH_API_TOKEN"
TOKEN = "bench-api-token-0123456789"


def fill(db_path, campaign_id, size, now_db):
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ? - 1) "
            "INSERT INTO number (campaign_id, phone, raw, status, attempts, next_attempt_at, "
            "extra, updated_at) SELECT ?, printf('+1%03d%03d11%02d', 201 + i / 80000, "
            "200 + (i / 100) % 800, i % 100), 'x', 'done', 1, ?, '{}', ? FROM s",
            (size, campaign_id, now_db, now_db))
        conn.execute(
            "INSERT INTO attempt (number_id, campaign_id, seq, token, server, status, outcome, "
            "dial_status, hangup_cause, created_at, answered_at, ended_at, duration_s, "
            "billsec_s, dest_result) SELECT id, campaign_id, 1, 'abcdef0123456789', 'main', "
            "'ended', 'answered', 'ANSWER', 16, ?, ?, ?, 12.5, 10.0, 'played' FROM number "
            "WHERE campaign_id = ?", (now_db, now_db, now_db, campaign_id))
    conn.close()


def one(box, workdir, size):
    os.makedirs(workdir, exist_ok=True)
    http_port = free_port()
    db_url = "sqlite:///%s" % os.path.join(workdir, "agi-campaign.db")
    path = harness.write_config(
        os.path.join(workdir, "config.yaml"), {"main": box}, free_port(),
        {"exp": sandbox_env.campaign(box)}, db_url=db_url, stop_deadline_s=20,
        http={"port": http_port, "token_env": TOKEN_ENV})
    open_database(db_url)
    rows = campaigns.sync_campaigns(load_config(str(path)), SystemClock().now())
    database.close_all()
    fill(db_url[len("sqlite:///"):], rows["exp"].id, size, to_db(SystemClock().now()))
    service = ServiceProcess(path, os.path.join(workdir, "service.log"),
                             load_config(str(path)).fastagi.port).start()
    try:
        wait_port(http_port, 30, service.proc)
        before = common.status_kb(service.pid, "VmHWM")
        began = time.monotonic()
        lines = size_bytes = 0
        with httpx.Client(timeout=600) as client, client.stream(
                "GET", "http://127.0.0.1:%d/api/v1/campaigns/exp/attempts.csv" % http_port,
                headers={"Authorization": "Bearer " + TOKEN}) as reply:
            reply.raise_for_status()
            for chunk in reply.iter_bytes():
                lines += chunk.count(b"\n")
                size_bytes += len(chunk)
        took = time.monotonic() - began
        hwm = common.status_kb(service.pid, "VmHWM")
    finally:
        service.stop(graceful=True)
    assert lines == size + 1, (lines, size)
    return hwm / 1024.0, before / 1024.0, size / took, size_bytes


def run(workdir):
    os.environ[TOKEN_ENV] = TOKEN
    box = sandbox_env.start_sandbox("benchapi")
    try:
        tiny, _, _, _ = one(box, os.path.join(workdir, "tiny"), SIZES[0])
        small, small_start, _, _ = one(box, os.path.join(workdir, "small"), SIZES[1])
        big, big_start, rate, size_bytes = one(box, os.path.join(workdir, "big"), SIZES[2])
    finally:
        box.stop()
    return [row("8 api export", "peak RSS of `run` streaming attempts.csv, 1M rows vs 100k",
                big, small, "MB", "<= 1.25x, < 150 MB", big / small <= 1.25 and big < 150,
                note="before the export: %.0f MB (1M), %.0f MB (100k); 1k rows: %.0f MB peak; "
                     "1M rows (%.0f MB of CSV) at %.0f rows/s" % (
                         big_start, small_start, tiny, size_bytes / 1e6, rate))]


if __name__ == "__main__":
    main_for(run)
