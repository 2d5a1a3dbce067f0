"""Two nodes' Deliverers on one database (agi_campaign.webhook_delivery with agi_campaign.lease),
POSTing to a real HTTP receiver: every event is delivered exactly once and in order per
campaign, also when the node holding a campaign stops (its lease released: the other node
takes over at once) or is SIGKILLed (its lease expires: the other node takes over within the
ttl and one poll). Several nodes need PostgreSQL (on SQLite, one `run` per database, a starting
Deliverer takes every lease over: that case runs on both)."""
import base64
import http.server
import json
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from agi_campaign import lease as lease_mod, webhooks
from agi_campaign.clock import SystemClock
from agi_campaign.config import WebhookConfig
from agi_campaign.lease import Lease, holders
from agi_campaign.models import Lease as LeaseRow, WebhookEvent
from agi_campaign.webhook_delivery import (MIN_TTL_S, POLL_S, Deliverer, _CampaignWorker,
                                           lease_name, lease_ttl_s, post_limit_s)

from tests.unit.support import T0, FakeClock, make_campaign, wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
CAMPAIGNS = ("a", "b")


class Receiver:
    """A stdlib HTTP server on an ephemeral port answering 204; records (campaign, n) of each
    POST's body in arrival order."""

    def __init__(self):
        receiver = self
        self.lock = threading.Lock()
        self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver.lock:
                    receiver.got.append((data["data"]["campaign"], data["data"]["n"]))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hooks" % self.server.server_address[1]

    def of(self, campaign):
        with self.lock:
            return [n for name, n in self.got if name == campaign]

    def count(self):
        with self.lock:
            return len(self.got)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def enqueue(camps, start, count):
    now = SystemClock().now()
    for n in range(start, start + count):
        for camp in camps.values():
            webhooks.enqueue(camp.id, "campaign.state", webhooks.body(
                "campaign.state", now, {"campaign": camp.name, "n": n}), now)


def all_delivered():
    return not WebhookEvent.select().where(WebhookEvent.status != "delivered").exists()


def holder_of(camp):
    return holders(lease_name(camp.id))[lease_name(camp.id)][0]


ON_POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@ON_POSTGRES
def test_webhook_lease_two_nodes_deliver_each_event_once_in_order_and_hand_over_on_stop(db):
    receiver = Receiver()
    hook = WebhookConfig(url=receiver.url, secret_env="WHS", secret=SECRET, timeout_s=2)
    camps = {name: make_campaign(name) for name in CAMPAIGNS}
    nodes = {node: Deliverer(lambda name: hook, list(CAMPAIGNS), node=node) for node in (1, 2)}
    try:
        enqueue(camps, 0, 10)
        for deliverer in nodes.values():
            deliverer.start()
        enqueue(camps, 10, 6)           # 32 events in all, some while both nodes run
        assert wait_until(lambda: receiver.count() >= 32 and all_delivered(), timeout=20)
        time.sleep(2 * POLL_S)          # a duplicate would come within a poll
        for name in CAMPAIGNS:
            assert receiver.of(name) == list(range(16))

        stopped = holder_of(camps["a"])
        other = 3 - stopped
        nodes.pop(stopped).stop()       # releases its leases
        began = time.monotonic()
        enqueue(camps, 16, 8)
        assert wait_until(lambda: receiver.count() >= 48 and all_delivered(), timeout=20)
        handover_s = time.monotonic() - began
        time.sleep(2 * POLL_S)
        for name in CAMPAIGNS:
            assert receiver.of(name) == list(range(24))
            assert holder_of(camps[name]) == other
        # released, not expired: well within the ttl (max(15 s, 3 x 2 s + 10 s) = 16 s)
        assert handover_s < 5, handover_s
    finally:
        for deliverer in nodes.values():
            deliverer.stop()
        receiver.close()


CHILD = """
    import sys, time
    from agi_campaign.config import WebhookConfig
    from agi_campaign.models import open_database
    from agi_campaign.webhook_delivery import Deliverer
    open_database(sys.argv[1])
    hook = WebhookConfig(url=sys.argv[2], secret_env="WHS", secret=sys.argv[3], timeout_s=0.2)
    Deliverer(lambda name: hook, ["a", "b"], node=1, fixed_ttl_s=float(sys.argv[4])).start()
    time.sleep(120)
"""


@ON_POSTGRES
def test_webhook_lease_holder_killed_other_node_takes_over_within_ttl_and_a_poll(db, db_url):
    ttl_s = 5.0                     # > 3 x timeout_s + POST_MARGIN_S + lease.MARGIN_S = 3.6 s
    receiver = Receiver()
    hook = WebhookConfig(url=receiver.url, secret_env="WHS", secret=SECRET, timeout_s=0.2)
    camps = {name: make_campaign(name) for name in CAMPAIGNS}
    enqueue(camps, 0, 8)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), db_url,
                              receiver.url, SECRET, str(ttl_s)], cwd=ROOT)
    survivor = Deliverer(lambda name: hook, list(CAMPAIGNS), node=2, fixed_ttl_s=ttl_s)
    try:
        assert wait_until(lambda: all_delivered() and receiver.count() >= 16, timeout=30)
        assert {holder_of(c) for c in camps.values()} == {1}
        survivor.start()                # idles: node 1 holds both campaigns
        time.sleep(2 * POLL_S)
        enqueue(camps, 8, 2)
        assert wait_until(lambda: receiver.count() >= 20 and all_delivered(), timeout=10)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed = time.monotonic()       # node 1 renewed at most ttl ago: no release
        enqueue(camps, 10, 5)
        assert wait_until(lambda: receiver.count() >= 30 and all_delivered(), timeout=ttl_s + 5)
        takeover_s = time.monotonic() - killed
        time.sleep(2 * POLL_S)
        for name in CAMPAIGNS:
            assert receiver.of(name) == list(range(15))
            assert holder_of(camps[name]) == 2
        assert takeover_s <= ttl_s + POLL_S + 2.0, takeover_s  # (2 s: a loaded machine)
        assert [row.epoch for row in LeaseRow.select()] == [2, 2]
    finally:
        survivor.stop()
        if child.poll() is None:
            child.kill()
            child.wait(10)
        receiver.close()


def test_webhook_lease_of_a_dead_run_taken_over_at_start_on_sqlite_only(db, db_url):
    """SQLite has one `run` per database: a restarted service delivers at once. On PostgreSQL
    another node may be alive: the lease is waited for."""
    receiver = Receiver()
    hook = WebhookConfig(url=receiver.url, secret_env="WHS", secret=SECRET, timeout_s=2)
    camps = {name: make_campaign(name) for name in CAMPAIGNS}
    for camp in camps.values():         # a run killed while it held its leases for 60 s
        assert Lease(lease_name(camp.id), 1, 60, SystemClock()).hold()
    enqueue(camps, 0, 3)
    deliverer = Deliverer(lambda name: hook, list(CAMPAIGNS), node=2)
    try:
        deliverer.start()
        if db_url.startswith("sqlite"):
            assert wait_until(lambda: receiver.count() >= 6 and all_delivered(), timeout=5)
            assert {holder_of(c) for c in camps.values()} == {2}
        else:
            time.sleep(4 * POLL_S)
            assert receiver.count() == 0
            assert {holder_of(c) for c in camps.values()} == {1}
    finally:
        deliverer.stop()
        receiver.close()


def test_webhook_lease_post_starts_only_with_trust_for_the_whole_post(db, monkeypatch):
    """ttl 40 s at timeout_s 10: a POST (30 s at most) needs 32 s of trust; after a renewal
    that took r s, 39 - r are left: a POST may start when r < 7 s, not after a slower one."""
    clock = FakeClock(T0)
    receiver = Receiver()
    hook = WebhookConfig(url=receiver.url, secret_env="WHS", secret=SECRET, timeout_s=10)
    assert (post_limit_s(hook), lease_ttl_s(hook)) == (30, 40)
    assert lease_ttl_s(WebhookConfig(url=receiver.url, secret_env="WHS", timeout_s=1)) == 15
    camp = make_campaign("a")
    enqueue({"a": camp}, 0, 2)
    lease = Lease(lease_name(camp.id), 1, MIN_TTL_S, clock)
    worker = _CampaignWorker("a", camp.id, lambda name: hook, clock, random.Random(0), lease)
    real, took = lease_mod.claim, {"s": 7.0}

    def slow_claim(*args):
        granted = real(*args)
        clock.advance(took["s"])
        return granted

    monkeypatch.setattr(lease_mod, "claim", slow_claim)
    try:
        assert worker.step() == POLL_S          # held, 32 s left: not more than a POST needs
        assert lease.trusted_for() == 32 and receiver.count() == 0
        took["s"] = 6.9
        assert worker.step() == 0               # renewed first: 32.1 s left
        assert receiver.of("a") == [0]
        clock.advance(0.2)                      # 31.9 s left: renewed (6.9 s) before the POST
        assert worker.step() == 0 and receiver.of("a") == [0, 1]
        assert lease.trusted_for() == pytest.approx(32.1)
    finally:
        worker.close()
        receiver.close()


class GoneReceiver(Receiver):
    """Answers every POST 410 Gone (counted like Receiver's)."""

    def __init__(self):
        super().__init__()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                with receiver.lock:
                    receiver.got.append(("gone", 0))
                self.send_response(410)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server.RequestHandlerClass = Handler


@ON_POSTGRES
def test_webhook_lease_a_410_gone_holds_for_every_node(db):
    """Node 1 gets 410 Gone: stored, so node 2 (started while node 1 runs: it keeps the
    record) does not POST to that receiver again when it takes the campaign over."""
    from agi_campaign.heartbeat import Heartbeat

    receiver = GoneReceiver()
    hook = WebhookConfig(url=receiver.url, secret_env="WHS", secret=SECRET, timeout_s=2)
    camp = make_campaign("a")
    beats = [Heartbeat("i", 100, host="h", pid=pid) for pid in (1, 2)]
    for beat in beats:
        beat.start(SystemClock().now())
    one = Deliverer(lambda name: hook, ["a"], node=beats[0].row_id)
    two = Deliverer(lambda name: hook, ["a"], node=beats[1].row_id)
    try:
        enqueue({"a": camp}, 0, 2)
        one.start()
        assert wait_until(lambda: webhooks.gone_url(camp.id) == receiver.url, 15)
        two.start()                      # a node joining: node 1 is live, its 410 is kept
        assert webhooks.gone_url(camp.id) == receiver.url
        one.stop()                       # releases the lease: node 2 takes the campaign over
        assert wait_until(lambda: holder_of(camp) == beats[1].row_id, 10)
        time.sleep(3 * POLL_S)
        assert receiver.count() == 1 and "a" in webhooks.disabled()
    finally:
        one.stop()
        two.stop()
        receiver.close()
