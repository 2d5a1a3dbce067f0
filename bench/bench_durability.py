"""Benchmark 7: what fsyncing every SQLite commit costs (synchronous=FULL, the setting the
service uses, against NORMAL, the baseline, measured in the same run on the same disk).

A claim of 10 numbers (one commit: the attempt rows written before the Originates) and the
results of those 10 calls written one by one through the result writer (a commit each), timed; every claim's numbers
are reset untimed so each one sees the same state. FULL is what keeps a committed attempt row
(the guard against calling someone twice) after a power loss; the ratio tells what it costs.
"""
import os
import time

from common import fresh_campaign, main_for, percentile, row  # noqa: E402

from agi_campaign import db as db_mod
from agi_campaign.claim import claim_due
from agi_campaign.clock import SystemClock
from agi_campaign.db import database
from agi_campaign.models import Number
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.result_writer import BatchWriter

ROUNDS = int(os.environ.get("BENCH_DURABILITY_ROUNDS", "300"))
WARMUP = 20


def measure(workdir, synchronous):
    db_mod.SQLITE_PRAGMAS["synchronous"] = synchronous
    camp, now = fresh_campaign(os.path.join(workdir, "durability-%s.db" % synchronous),
                               "d", "running")
    Number.insert_many([dict(campaign=camp.id, phone="+1202%07d" % (2000000 + i), raw="x",
                             status="pending", attempts=0, next_attempt_at=now, updated_at=now,
                             extra="{}") for i in range(1000)]).execute()
    writer = BatchWriter(database)
    writer.start()
    recorder = Recorder(lambda name: RetryPolicy(1000, 0), writer)
    claims, results = [], []
    for i in range(WARMUP + ROUNDS):
        began = time.perf_counter()
        claimed = claim_due(camp.id, 10, SystemClock().now(), "main", (), 1000)
        took_claim = time.perf_counter() - began
        began = time.perf_counter()
        for c in claimed:  # one commit each: results arrive one by one when calls are few
            recorder.record_result(c.attempt_id, c.token, "BUSY", "17", "", "",
                                   SystemClock().now())
        took_result = (time.perf_counter() - began) / len(claimed)
        with database.atomic():
            database.execute_sql("UPDATE number SET next_attempt_at = ? WHERE campaign_id = ?",
                                 (now, camp.id))
        if i >= WARMUP:
            claims.append(took_claim * 1000)
            results.append(took_result * 1000)
    writer.stop()
    database.close_all()
    return percentile(claims, 50), percentile(results, 50)


def run(workdir):
    saved = db_mod.SQLITE_PRAGMAS["synchronous"]
    try:
        normal = measure(workdir, "normal")
        full = measure(workdir, "full")
    finally:
        db_mod.SQLITE_PRAGMAS["synchronous"] = saved
    note = "%d rounds; p50 NORMAL: claim %.2f ms, a result %.2f ms" % (ROUNDS, *normal)
    return [
        row("7 durability SQLite", "claim of 10, synchronous FULL vs NORMAL (p50)", full[0],
            normal[0], "ms", "report", True, note=note),
        row("7 durability SQLite", "one result written, FULL vs NORMAL (p50)",
            full[1], normal[1], "ms", "report", True),
    ]


if __name__ == "__main__":
    main_for(run)
