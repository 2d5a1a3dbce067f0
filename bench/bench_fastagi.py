"""Benchmark 5: FastAGI sessions per second, our server vs a plain threaded socket server.

A fake Asterisk (bench/agi_client.py, its own process, 16 threads) opens one `result` session
per attempt: the AGI environment with the hangup handler's arguments, then `200 result=1` to
each command. Ours: FastAgiServer + Router + a real results.Recorder on SQLite, wrapped like the
service (`connection_context` per session); each session records a real attempt's result (the
attempt ends, its number moves to done) and sends `DATABASE DEL`. Baseline: common.PlainAgiServer
reading the environment and sending the same DATABASE DEL, writing nothing.
"""
import os
import subprocess
import sys
import time

from common import PlainAgiServer, fresh_campaign, main_for, row  # noqa: E402

from agi_campaign.clock import SystemClock, to_db
from agi_campaign.db import database
from agi_campaign.fastagi import FastAgiServer
from agi_campaign.models import Attempt
from agi_campaign.metrics import Metrics
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.routes import Router
from agi_campaign.service import Service
from agi_campaign.result_writer import BatchWriter

import sandbox_env

SESSIONS = int(os.environ.get("BENCH_AGI_SESSIONS", "3000"))
THREADS = 16
HERE = os.path.dirname(os.path.abspath(__file__))


def client(port, path):
    out = subprocess.run([sys.executable, os.path.join(HERE, "agi_client.py"), str(port), path,
                          str(THREADS)], capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.strip())


def setup(workdir):
    camp, now = fresh_campaign(os.path.join(workdir, "agi.db"), "agi", "running")
    phones = ["+1202%07d" % i for i in range(SESSIONS)]
    sandbox_env.insert_numbers(camp.id, phones, to_db(now), status="in_flight")
    num_ids = [r[0] for r in database.execute_sql(
        "SELECT id FROM number WHERE campaign_id = ? ORDER BY id", (camp.id,))]
    rows = [{"number": nid, "campaign": camp.id, "seq": 1, "token": "%016x" % nid,
             "server": "main", "status": "dialing", "created_at": to_db(now)} for nid in num_ids]
    with database.atomic():
        for i in range(0, len(rows), 500):
            Attempt.insert_many(rows[i:i + 500]).execute()
    path = os.path.join(workdir, "sessions.txt")
    with open(path, "w", encoding="utf-8") as fh:
        for att in Attempt.select(Attempt.id, Attempt.token):
            fh.write("%d %s\n" % (att.id, att.token))
    database.close()
    return path


def ours(path):
    metrics = Metrics()  # as agi_campaign.service wires it: results counted in the metrics
    writer = BatchWriter(database, metrics=metrics)
    writer.start()
    recorder = Recorder(lambda name: RetryPolicy(max_attempts=1, retry_delay_s=0), writer,
                        metrics=metrics)
    router = Router(lambda name: None, recorder, SystemClock(), "bench")
    server = FastAgiServer("127.0.0.1", 0, Service._with_db(router), max_connections=512)
    server.start()
    try:
        took = client(server.address[1], path)
    finally:
        server.stop()
        writer.stop()
    ended = Attempt.select().where(Attempt.status == "ended").count()
    return SESSIONS / took, ended


def plain(path):
    def commands(env):
        return ["DATABASE DEL agi-campaign %s" % env.get("agi_arg_1", "")]
    with PlainAgiServer(commands) as srv:
        return SESSIONS / client(srv.port, path)


def run(workdir):
    path = setup(workdir)
    base1 = plain(path)
    rate, ended = ours(path)
    time.sleep(0.5)
    base2 = plain(path)
    base = max(base1, base2)
    return [row("5 FastAGI", "result sessions/s vs plain threaded server", rate, base,
                "sessions/s", ">= 0.7", rate / base >= 0.7,
                note="%d sessions, %d threads; %d attempts ended in the database; plain runs "
                     "%.0f and %.0f/s" % (SESSIONS, THREADS, ended, base1, base2))]


if __name__ == "__main__":
    main_for(run)
