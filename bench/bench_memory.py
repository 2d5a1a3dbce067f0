"""Benchmark 6: peak RSS (VmHWM) of `agi-campaign run` dialing a 1,000,000-number campaign vs a
1,000-number one, ~20 s each (max_channels 20, callees answer, 20 ms message). The numbers are
inserted with SQL; the service is a child process, read from /proc/<pid>/status."""
import os
import sqlite3
import time

from common import main_for, row  # noqa: E402

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock, to_db
from agi_campaign.config import load_config
from agi_campaign.db import database
from agi_campaign.models import open_database
from agi_campaign.models import Attempt
from agi_campaign.testing.process import ServiceProcess

import common
import sandbox_env

RUN_S = 20
SIZES = (1_000, 1_000_000)


def one(box, workdir, size):
    os.makedirs(workdir, exist_ok=True)
    path, port, db_url = sandbox_env.write_service_config(
        workdir, box, {"mem": sandbox_env.campaign(box, max_channels=20)})
    open_database(db_url)
    now_db = to_db(SystemClock().now())
    rows = campaigns.sync_campaigns(load_config(str(path)), SystemClock().now())
    database.close_all()
    conn = sqlite3.connect(db_url[len("sqlite:///"):])
    with conn:
        # answering callees: +1 <area> <exchange> 1 1 <2 digits>  (d4=1 answer, d3=1 s)
        conn.execute(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ? - 1) "
            "INSERT INTO number (campaign_id, phone, raw, status, attempts, next_attempt_at, "
            "extra, updated_at) SELECT ?, printf('+1%03d%03d11%02d', 201 + i / 80000, "
            "200 + (i / 100) % 800, i % 100), 'x', 'pending', 0, ?, '{}', ? FROM s",
            (size, rows["mem"].id, now_db, now_db))
    conn.close()
    service = ServiceProcess(path, os.path.join(workdir, "service.log"), port).start()
    try:
        time.sleep(2.5)
        campaigns.apply_command("mem", "start", SystemClock().now())
        time.sleep(RUN_S)
        hwm = common.status_kb(service.pid, "VmHWM")
    finally:
        service.stop(graceful=True)
    calls = Attempt.select().count()
    database.close_all()
    sandbox_env.wait_idle(box)
    return hwm / 1024.0, calls


def run(workdir):
    box = sandbox_env.start_sandbox()
    try:
        small, small_calls = one(box, os.path.join(workdir, "small"), SIZES[0])
        big, big_calls = one(box, os.path.join(workdir, "big"), SIZES[1])
    finally:
        box.stop()
    return [row("6 memory", "peak RSS of `run`, 1M-number campaign vs 1k", big, small, "MB",
                "flat (<= 1.1x), < 150 MB", big / small <= 1.1 and big < 150,
                note="%d s each; calls placed: %d (1k), %d (1M)" % (RUN_S, small_calls,
                                                                   big_calls))]


if __name__ == "__main__":
    main_for(run)
