"""Helpers of the unit tests (and of tests/hostile): rows written straight through the models,
fakes of the AMI client and of the clock for engine tests, a one-campaign config and an engine
wired to those fakes, the real FastAGI server on ephemeral ports, polling, the database
plumbing the fixtures of tests/unit/dbfixtures.py share, and the store load (claimer and result
writers at once). Test modules import helpers from here, never from each other."""
import concurrent.futures
import datetime as dt
import os
import queue
import threading
import time
import urllib.parse

import pytest

from agi_campaign import campaigns
from agi_campaign.claim import claim_due
from agi_campaign.clock import to_db
from agi_campaign.config import parse_config
from agi_campaign.db import database
from agi_campaign.dburl import mask_url
from agi_campaign.engine import Engine
from agi_campaign.errors import AmiError
from agi_campaign.fastagi import FastAgiServer
from agi_campaign.models import Attempt, Campaign, Number, open_database
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# ---- rows -----------------------------------------------------------------------------------

def make_campaign(name="c1", ctype="on_demand", state="ready", server="main", at=T0):
    """A campaign row created (and last changed) at `at`."""
    return Campaign.create(name=name, type=ctype, server=server, state=state,
                           state_changed_at=to_db(at), created_at=to_db(at))


def phone(i):
    """A valid US number, distinct for each i < 10,000,000 (area codes 202 and 212)."""
    area = ("202", "212", "303", "415")[i // 10_000_000 % 4]
    return "+1%s%07d" % (area, 2_000_000 + i % 8_000_000)


def make_numbers(campaign, count, start=0, due=T0):
    """`count` pending numbers phone(start..), due at `due`; returns their phones."""
    rows = [dict(campaign=campaign.id, phone=phone(i), raw=phone(i), status="pending",
                 attempts=0, next_attempt_at=to_db(due), updated_at=to_db(due), extra="{}")
            for i in range(start, start + count)]
    for i in range(0, len(rows), 500):
        Number.insert_many(rows[i:i + 500]).execute()
    return [r["phone"] for r in rows]


# ---- fakes at the engine's boundaries: AMI (the real client has its own tests) and the clock

class FakeAmi:
    """Records actions; `refuse` makes Originates fail with Response: Error."""

    def __init__(self, connected=True):
        self.connected = connected
        self.actions = []
        self.channels = []
        self.astdb = {}  # (family, key) -> value, answered to DBGet
        self.refuse = False
        self.batches = []  # the size of each send_many call
        self.listeners = []
        self._lock = threading.Lock()

    def send(self, action):
        fut = concurrent.futures.Future()
        with self._lock:
            self.actions.append(action)
        if self.refuse:
            fut.set_exception(AmiError("Originate failed: Extension does not exist."))
        else:
            fut.set_result({"Response": "Success", "Message": "Originate successfully queued"})
        return fut

    def send_many(self, actions):
        self.batches.append(len(actions))
        return [self.send(action) for action in actions]

    def collect(self, action, complete_event, timeout=None):
        if action.get("Action") == "DBGet":
            value = self.astdb.get((action["Family"], action["Key"]))
            return [] if value is None else [{"Event": "DBGetResponse", "Val": value}]
        return [dict(ch) for ch in self.channels]

    def add_listener(self, fn):
        self.listeners.append(fn)

    def originates(self):
        return [a for a in self.actions if a["Action"] == "Originate"]


class FakeClock:
    """A clock that moves only when told to; sleep() advances it."""

    def __init__(self, start=None):
        self._now = start or dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            return self._now

    def monotonic(self):
        with self._lock:
            return self._mono

    def advance(self, seconds):
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)
            self._mono += seconds

    def sleep(self, seconds):
        if seconds > 0:
            self.advance(seconds)

    def set(self, when):
        with self._lock:
            delta = (when - self._now).total_seconds()
            self._now = when
            self._mono += max(delta, 0.0)


# ---- a one-campaign config and an engine on the fakes ---------------------------------------

# A campaign's settings and a server's, as in config.yaml.
CAMPAIGN = {"caller_id": "12025550100", "type": "on_demand", "max_channels": 3,
            "max_attempts": 2, "retry_delay_s": 60, "delay_ms": 0, "dnc_lists": ["global"],
            "on_connect": {"type": "message", "sounds": ["hello-world"]}}
SERVER = {"ami": {"username": "u", "secret": "s"}, "dial_template": "Local/{number}@callees"}


def campaign_config(**campaign):
    """The parsed config of one campaign "c1" (CAMPAIGN with `campaign` on top) on server
    "main", DNC list "global", ticks of 1 s."""
    return parse_config({
        "servers": {"main": SERVER},
        "dnc_lists": {"global": {}},
        "service": {"tick_ms": 1000},
        "campaigns": {"c1": dict(CAMPAIGN, **campaign)}}, "test.yaml")


def engine_for(count=10, **campaign):
    """An Engine on campaign_config(**campaign) (campaign "c1" synced, `count` due numbers) with
    a FakeAmi for server "main" and a FakeClock at T0; returns (engine, ami, clock, campaign
    row, recorder)."""
    cfg = campaign_config(**campaign)
    clock = FakeClock(T0)
    campaigns.sync_campaigns(cfg, clock.now())
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, count)
    ami = FakeAmi()
    rec = Recorder(lambda name: RetryPolicy.of(cfg.campaigns[name]))
    return (Engine(cfg, clock, {"main": ami}, rec, instance="t1", spacing_clock=clock.now), ami,
            clock, row, rec)


def start_running(engine, row):
    """Start campaign "c1" and let the engine move it to RUNNING."""
    campaigns.apply_command("c1", "start", engine.clock.now())
    engine.tick_states()
    assert Campaign.get_by_id(row.id).state == "running"


def engine_dialing(count=10, **campaign):
    """engine_for(count, **campaign) with "c1" started and dialed once (one tick)."""
    engine, ami, clock, row, rec = engine_for(count, **campaign)
    start_running(engine, row)
    engine.dial("c1")
    return engine, ami, clock, row, rec


# ---- the real FastAGI server, polling -------------------------------------------------------

class FastAgiServers:
    """Starts real FastAGI servers on 127.0.0.1, ephemeral ports: call it with a handler and
    options (on top of `defaults`); `stop_all()` stops every one started."""

    def __init__(self, **defaults):
        self.defaults = defaults
        self.servers = []

    def __call__(self, handler, **options):
        server = FastAgiServer("127.0.0.1", 0, handler, **dict(self.defaults, **options))
        server.start()
        self.servers.append(server)
        return server

    def stop_all(self):
        for server in self.servers:
            server.stop()


def wait_until(predicate, timeout=5.0):
    """Poll ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---- database plumbing ----------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get("AGI_CAMPAIGN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_admin_execute(sql, params=None):
    """Run one statement as the PostgreSQL admin (PG_ADMIN_URL, autocommit); its rows, or None
    for a statement that returns none. An unreachable server FAILS the test."""
    import psycopg2

    parts = urllib.parse.urlsplit(PG_ADMIN_URL)
    try:
        conn = psycopg2.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                                user=urllib.parse.unquote(parts.username or "postgres"),
                                password=urllib.parse.unquote(parts.password or "") or None,
                                dbname=(parts.path or "/test").lstrip("/") or "postgres",
                                connect_timeout=5)
    except psycopg2.OperationalError as err:
        pytest.fail("PostgreSQL at %s is not reachable (%s): start it or set "
                    "AGI_CAMPAIGN_TEST_PG" % (mask_url(PG_ADMIN_URL), str(err).strip()),
                    pytrace=False)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def close_database(database):
    """Close this thread's connection (and every pooled one, where the database pools)."""
    close_all = getattr(database, "close_all", None)
    if close_all is not None:
        close_all()
    if not database.is_closed():
        database.close()


# ---- the store load of test_store_load.py -------------------------------------------------------
# A claimer and result writers on one campaign, in threads or in spawned worker processes (they
# import this module by name). Outcomes are a pure function of (number id, attempt seq), so the
# final state of every number can be predicted and checked: number id % 4 + 1 is the attempt
# that answers (4: never; within LOAD_MAX_ATTEMPTS = 3 attempts the number fails).

LOAD_MAX_ATTEMPTS = 3
OPEN_STATUSES = ("pending", "in_flight")


def _load_answering_seq(number_id):
    """The attempt that answers (4: none, the number fails after LOAD_MAX_ATTEMPTS)."""
    return number_id % 4 + 1


def _load_dial_status(number_id, seq):
    """The DIALSTATUS of attempt `seq` of a number: a pure function, so results can be checked."""
    if seq >= _load_answering_seq(number_id):
        return "ANSWER"
    return "BUSY" if seq % 2 else "NOANSWER"


def _close_thread_connection():
    if not database.is_closed():
        database.close()


def run_store_load(campaign_id, deadline_s, writers=4, batch=25):
    """Claim in this thread, record results in `writers` threads, until every number of the
    campaign is done or failed (or the deadline). Returns counts and errors."""
    recorder = Recorder(lambda name: RetryPolicy(LOAD_MAX_ATTEMPTS, 0))
    work = queue.Queue()
    stats = {"claimed": 0, "results": 0, "ignored": 0, "errors": []}
    lock = threading.Lock()
    outstanding = [0]

    def writer():
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                try:
                    status = _load_dial_status(item.number_id, item.seq)
                    if status == "ANSWER":
                        recorder.record_answer(item.attempt_id, item.token, T0)
                    assert recorder.record_result(item.attempt_id, item.token, status, "16",
                                                  "5", "9", T0)
                    again = item.attempt_id % 10 == 0 and recorder.record_result(
                        item.attempt_id, item.token, "ANSWER", "16", "5", "9", T0)
                    with lock:
                        stats["results"] += 1
                        stats["ignored"] += 0 if again else item.attempt_id % 10 == 0
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    with lock:
                        stats["errors"].append(repr(exc))
                finally:
                    with lock:
                        outstanding[0] -= 1
        finally:
            _close_thread_connection()

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(writers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < deadline_s:
            try:
                claimed = claim_due(campaign_id, batch, T0, "main", (), LOAD_MAX_ATTEMPTS)
            except Exception as exc:  # noqa: BLE001
                stats["errors"].append(repr(exc))
                break
            with lock:
                outstanding[0] += len(claimed)
                stats["claimed"] += len(claimed)
            for item in claimed:
                work.put(item)
            if claimed:
                continue
            with lock:
                idle = outstanding[0] == 0
            if idle and not Number.select().where(
                    (Number.campaign == campaign_id) & Number.status.in_(OPEN_STATUSES)).exists():
                break
            time.sleep(0.002)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join(30)
        _close_thread_connection()
    stats["elapsed_s"] = time.monotonic() - started
    return stats


def store_load_process(args):
    """Entry point of a spawned worker process: its own connection, then run_store_load."""
    url, campaign_id, deadline_s, writers = args
    open_database(url, create=False)
    return run_store_load(campaign_id, deadline_s, writers=writers)


def store_load_problems(campaign_id):
    """Every number ended with the status its results imply; attempts match attempt rows."""
    problems = []
    attempts = {}
    for att in Attempt.select().where(Attempt.campaign == campaign_id):
        attempts.setdefault(att.number_id, []).append(att)
    total = 0
    for number in Number.select().where(Number.campaign == campaign_id):
        k = _load_answering_seq(number.id)
        want_attempts = min(k, LOAD_MAX_ATTEMPTS)
        want_status = "done" if k <= LOAD_MAX_ATTEMPTS else "failed"
        rows = sorted(attempts.get(number.id, []), key=lambda a: a.seq)
        total += len(rows)
        if (number.status, number.attempts) != (want_status, want_attempts):
            problems.append("number %d: %s/%d, want %s/%d" % (
                number.id, number.status, number.attempts, want_status, want_attempts))
        if [a.seq for a in rows] != list(range(1, want_attempts + 1)):
            problems.append("number %d: attempt seqs %s" % (number.id, [a.seq for a in rows]))
        for att in rows:
            want = "answered" if _load_dial_status(number.id, att.seq) == "ANSWER" else None
            if att.status != "ended" or (want and att.outcome != want) or (
                    not want and att.outcome not in ("busy", "noanswer")):
                problems.append("attempt %d: %s %s" % (att.id, att.status, att.outcome))
        if rows and number.last_outcome != rows[-1].outcome:
            problems.append("number %d: last_outcome %s" % (number.id, number.last_outcome))
    return problems, total
