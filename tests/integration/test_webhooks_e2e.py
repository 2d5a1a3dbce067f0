"""Webhooks end to end: the real service (a child process) dialing the real Asterisk sandbox,
POSTing to a local HTTP receiver that verifies every signature as a Standard Webhooks receiver
does, fails the first deliveries, is down for a while, and comes back; the service is SIGKILLed
twice meanwhile. Every ended attempt and every state change must reach the receiver, in order
per campaign, duplicates only as re-deliveries with the same webhook-id."""
import base64
import collections
import http.server
import threading
import time

import standardwebhooks

from agi_campaign import webhooks
from agi_campaign.models import Attempt, Campaign, StateChange, WebhookEvent
from agi_campaign.testing import harness
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import (campaign, check_invariants, plan_numbers,
                                       prepared_service, state, wait_for)

SECRET = "whsec_" + base64.b64encode(b"integration-test-webhook-key-32b").decode()
SECRET_ENV = "ACAMP_TEST_WEBHOOK_SECRET"


class Receiver:
    """A stdlib HTTP server on `port` that verifies each request's signature, answers 500 to
    the first `fail_first` requests and 204 to the others; `down()` closes its socket (the
    port stops listening), `up()` listens again on the same port. `hold()`: the next request
    is recorded as delivered but its answer waits until `release()` (`held` is set meanwhile),
    so the sender can be killed between the receiver's 2xx and recording it."""

    def __init__(self, port, fail_first):
        self.port = port
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.requests = []          # (webhook-id, body dict or None, status answered)
        self.bad_signatures = 0
        self.server = None
        self.holding = False
        self.held = threading.Event()
        self.released = threading.Event()

    def hold(self):
        self.holding = True

    def release(self):
        self.released.set()

    def up(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    data = standardwebhooks.Webhook(SECRET).verify(body, dict(self.headers))
                except standardwebhooks.webhooks.WebhookVerificationError:
                    data = None
                with receiver.lock:
                    failing = len(receiver.requests) < receiver.fail_first
                    code = 400 if data is None else 500 if failing else 204
                    receiver.bad_signatures += data is None
                    receiver.requests.append((self.headers.get("webhook-id"), data, code))
                    hold, receiver.holding = receiver.holding and code == 204, False
                if hold:
                    receiver.held.set()
                    receiver.released.wait(30)
                try:
                    self.send_response(code)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass                # the sender was killed meanwhile

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()

    def delivered(self):
        with self.lock:
            return [(key, data) for key, data, code in self.requests if code == 204]


def test_webhooks_every_event_delivered_across_failures_outage_and_sigkills(
        asterisk, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    port = free_port()
    receiver = Receiver(port, fail_first=5)
    hook = {"url": "http://127.0.0.1:%d/hooks" % port, "secret_env": SECRET_ENV,
            "min_backoff_s": 1, "max_backoff_s": 2, "timeout_s": 5}
    plans = {"hooks_a": plan_numbers(30, 36000, seed=21),
             "hooks_b": plan_numbers(30, 36100, seed=22)}
    max_channels = 4
    _, service = prepared_service(tmp_path, {"main": asterisk}, {
        name: campaign(max_channels=max_channels, webhook=hook) for name in plans},
        {name: list(plan) for name, plan in plans.items()})
    receiver.up()
    began = time.monotonic()
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start()
            wait_for(lambda: len(receiver.delivered()) >= 6, 60)   # past the 5 failures
            receiver.hold()
            wait_for(receiver.held.is_set, 60)
            service.kill()                      # between the receiver's 2xx and its record
            receiver.release()
            service.start()
            receiver.down()
            down_at = time.monotonic()
            time.sleep(4)
            service.kill()                      # while the receiver is down
            service.start()
            wait_for(lambda: time.monotonic() - down_at >= 15, 20)
            backlog_at_up = sum(b["pending"] for b in webhooks.backlog().values())
            receiver.up()
            up_at = time.monotonic()
            drained_s = wait_for(lambda: not any(b["pending"] for b in
                                                 webhooks.backlog().values()), 60)
            wait_for(lambda: all(state(name) == "completed" for name in plans), 120, step=0.5)
            wait_for(lambda: WebhookEvent.select().where(
                WebhookEvent.status != "delivered").count() == 0, 30)
            all_done_s = time.monotonic() - up_at
        finally:
            service.stop(graceful=True)
    for name, plan in plans.items():
        others = {p[1:] for other, pl in plans.items() if other != name for p in pl}
        check_invariants(name, plan, mon, 2, 2 * max_channels, others=others)

    delivered = receiver.delivered()
    with receiver.lock:
        requests = list(receiver.requests)
    # every ended attempt reached the receiver; nothing else did
    ended = {a.id for a in Attempt.select().where(Attempt.status == "ended")}
    assert Attempt.select().where(Attempt.status != "ended").count() == 0
    got_attempts = collections.defaultdict(set)     # attempt id -> webhook-ids carrying it
    for key, data in delivered:
        if data["type"] == "attempt.ended":
            got_attempts[data["data"]["attempt_id"]].add(key)
    assert set(got_attempts) == ended
    # a duplicate is a re-delivery of the same event: one webhook-id per attempt, same body
    assert all(len(keys) == 1 for keys in got_attempts.values())
    bodies = collections.defaultdict(list)
    for key, data in delivered:
        bodies[key].append(data)
    assert all(all(b == same[0] for b in same) for same in bodies.values())
    duplicates = sum(len(same) - 1 for same in bodies.values())
    # every state change made by a move reached the receiver
    names = {c.id: c.name for c in Campaign.select()}
    moves = {(names[s.campaign_id], s.from_state, s.to_state) for s in StateChange.select()
             .where(StateChange.from_state != "")}
    got_moves = {(d["data"]["campaign"], d["data"]["from"], d["data"]["to"])
                 for _, d in delivered if d["type"] == "campaign.state"}
    assert got_moves == moves and ("hooks_a", "running", "completed") in moves
    # per campaign, requests come in outbox order (a retry or re-delivery repeats the last)
    rows = {e.key: e for e in WebhookEvent.select()}
    assert set(rows) == set(bodies)
    seqs = collections.defaultdict(list)
    for key, _, _ in requests:
        seqs[rows[key].campaign_id].append(rows[key].id)
    for seq in seqs.values():
        assert seq == sorted(seq)
    assert receiver.bad_signatures == 0
    failures = sum(1 for _, _, code in requests if code != 204)
    print("FIGURES webhooks: events=%d deliveries=%d duplicates=%d failures_injected=%d "
          "backlog_when_receiver_came_back=%d drained_after_s=%.1f all_done_after_s=%.1f "
          "kills=%d seconds=%.0f" % (len(rows), len(delivered), duplicates, failures,
                                     backlog_at_up, drained_s, all_done_s, service.starts - 1,
                                     time.monotonic() - began))
    assert failures == 5 and backlog_at_up > 0
    assert duplicates >= 1                  # the event held while the service was killed
    logged = (tmp_path / "service.log").read_text("utf-8", "replace")
    assert "webhook" in logged and SECRET[6:] not in logged
    assert not [p for plan in plans.values() for p in plan if p[1:] in logged]
