"""Fixture module, not helpers: a private PostgreSQL server for one test, so it can be stopped
and restarted at will.

The machine's shared PostgreSQL (127.0.0.1:5432) serves the other tests and must not be
restarted. This one runs Debian's binaries (PG_BIN, or AGI_CAMPAIGN_PG_BIN) as the `postgres` OS
user (PostgreSQL refuses to run as root) from a temporary directory owned by that user, listens
on 127.0.0.1 only on a free port, has its unix socket in that directory and trusts every local
login. `url` is a database `acamp` on it.

The `private_postgres` fixture is registered by tests/integration/conftest.py.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from agi_campaign.testing.sandbox import free_port

PG_BIN = os.environ.get("AGI_CAMPAIGN_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
DB_NAME = "acamp"


class PrivatePostgres:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="acamp-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.url = "postgresql://%s@127.0.0.1:%d/%s" % (PG_USER, self.port, DB_NAME)
        self.restarts = 0
        self.down_s = 0.0
        user = pwd.getpwnam(PG_USER)
        os.chown(self.dir, user.pw_uid, user.pw_gid)

    def _run(self, *args, timeout=60):
        cmd = ["runuser", "-u", PG_USER, "--", os.path.join(PG_BIN, args[0])] + list(args[1:])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%s): %s%s\n%s" % (
                " ".join(cmd), proc.returncode, proc.stdout, proc.stderr, self.log_tail()))
        return proc.stdout

    def init(self):
        self._run("initdb", "-D", self.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.start()
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER,
                                dbname="postgres", connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "%s"' % DB_NAME)
        finally:
            conn.close()
        return self

    def start(self):
        options = "-p %d -c listen_addresses=127.0.0.1 -k %s" % (self.port, self.dir)
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options,
                  "start", timeout=90)

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", timeout=90)

    def restart(self, down_s=3.0):
        """Stop (fast: every connection is terminated), stay down `down_s`, start again."""
        began = time.monotonic()
        self.stop()
        time.sleep(down_s)
        self.start()
        self.restarts += 1
        self.down_s += time.monotonic() - began
        return time.monotonic() - began

    def running(self):
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def log_tail(self, n=30):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return ""

    def cleanup(self):
        try:
            if self.running():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    if not os.path.exists(os.path.join(PG_BIN, "pg_ctl")):
        pytest.fail("no PostgreSQL binaries in %s: install postgresql or set "
                    "AGI_CAMPAIGN_PG_BIN" % PG_BIN, pytrace=False)
    server = PrivatePostgres()
    try:
        yield server.init()
    finally:
        server.cleanup()
