"""Webhooks: the outbox rows (same transaction as the result or the state change), signing as
a Standard Webhooks receiver verifies it, the backoff schedule, per-campaign order, 410 Gone,
giving up, the backlog and its `status` line, and the config's checks. The HTTP receiver here
is httpx.MockTransport (the protocol boundary); tests/integration/test_webhooks_e2e.py runs the
real service against a real HTTP receiver."""
import base64
import datetime as dt
import json
import random
import socket
import time

import httpx
import pytest
import standardwebhooks

from agi_campaign import campaigns, status as status_mod, webhooks
from agi_campaign.claim import claim_due
from agi_campaign.clock import UTC, SystemClock, to_db
from agi_campaign.config import (WebhookConfig, campaign_settings_json, parse_config,
                                 to_display_dict)
from agi_campaign.db import database
from agi_campaign.errors import ConfigError
from agi_campaign.models import Attempt, WebhookEvent
from agi_campaign.lease import Lease
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.webhook_delivery import (MIN_TTL_S, Deliverer, _CampaignWorker, backoff_s,
                                           lease_name, next_try_delay, retry_after_s,
                                           signed_headers)

from tests.unit.support import T0, FakeClock, make_campaign, make_numbers

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
HOOK = WebhookConfig(url="http://receiver.test/hooks", secret_env="WHS", secret=SECRET,
                     min_backoff_s=1, max_backoff_s=8, give_up_after_h=1)


# ---- signing, backoff ------------------------------------------------------------------------

def test_webhooks_signature_verifies_as_a_receiver_checks_it():
    body = '{"type":"attempt.ended","data":{"phone":"+12025550123"}}'
    headers = signed_headers(SECRET, "msg_abc", body, SystemClock().now())
    assert headers["webhook-id"] == "msg_abc" and headers["webhook-signature"].startswith("v1,")
    assert standardwebhooks.Webhook(SECRET).verify(body, headers)["data"]["phone"] == \
        "+12025550123"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body.replace("0123", "0124"), headers)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(body, headers)


def test_webhooks_backoff_doubles_to_the_cap_with_jitter_in_the_upper_half():
    low, high = random.Random(), random.Random()
    low.random, high.random = (lambda: 0.0), (lambda: 0.999999)
    bases = [5, 10, 20, 40, 80, 160, 300, 300, 300]
    for tries, base in enumerate(bases, start=1):
        assert backoff_s(tries, 5, 300, low) == pytest.approx(base / 2)
        assert backoff_s(tries, 5, 300, high) == pytest.approx(base, rel=1e-5)
    rng = random.Random(3)
    spread = {round(backoff_s(4, 5, 300, rng), 3) for _ in range(50)}
    assert len(spread) > 40 and min(spread) >= 20 and max(spread) <= 40


def test_webhooks_retry_after_is_honoured_when_longer_and_capped():
    rng = random.Random(1)
    assert next_try_delay(1, HOOK, 120, rng) == 120
    assert next_try_delay(1, HOOK, 10 ** 7, rng) == 3600
    assert 0.5 <= next_try_delay(1, HOOK, 0, rng) <= 1
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert retry_after_s("30", now) == 30
    assert retry_after_s("Tue, 01 Dec 2026 09:02:00 GMT", now) == 120
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None


# ---- the outbox --------------------------------------------------------------------------------

def finished_attempt(hook=HOOK, outcome_status="BUSY"):
    camp = make_campaign()
    make_numbers(camp, 1)
    c = claim_due(camp.id, 1, T0, "main", (), 3)[0]
    rec = Recorder(lambda name: RetryPolicy(3, 60), webhook_for=lambda name: hook)
    return camp, c, rec


def test_webhooks_attempt_event_written_with_the_result(db):
    camp, c, rec = finished_attempt()
    assert rec.record_result(c.attempt_id, c.token, "BUSY", "17", "", "3",
                             T0 + dt.timedelta(seconds=4))
    (event,) = WebhookEvent.select()
    assert (event.campaign_id, event.type, event.status, event.tries) == (
        camp.id, "attempt.ended", "pending", 0)
    assert event.key.startswith("msg_") and len(event.key) == 36
    body = json.loads(event.body)
    assert body["type"] == "attempt.ended" and body["timestamp"].startswith("2026-12-01T09:00:04")
    data = body["data"]
    assert (data["campaign"], data["attempt_id"], data["outcome"], data["dial_status"],
            data["hangup_cause"], data["number_status"], data["opted_out"], data["amd"]) == (
        "c1", c.attempt_id, "busy", "BUSY", 17, "pending", False, None)
    assert data["phone"] == c.phone and data["duration_s"] == 4.0
    # a second result for the ended attempt writes no second event
    assert not rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "", "3", T0)
    assert WebhookEvent.select().count() == 1


def test_webhooks_rolled_back_result_leaves_no_event(db):
    _, c, rec = finished_attempt()
    with pytest.raises(RuntimeError):
        with database.atomic():
            assert rec.record_result(c.attempt_id, c.token, "BUSY", "17", "", "3", T0)
            assert WebhookEvent.select().count() == 1
            raise RuntimeError("the transaction fails after the result")
    assert WebhookEvent.select().count() == 0
    assert Attempt.get_by_id(c.attempt_id).status == "dialing"


def test_webhooks_no_event_without_a_webhook_or_without_attempt_events(db):
    _, c, rec = finished_attempt(hook=None)
    rec.record_result(c.attempt_id, c.token, "BUSY", "17", "", "3", T0)
    camp2 = make_campaign("c2")
    make_numbers(camp2, 1, start=10)
    c2 = claim_due(camp2.id, 1, T0, "main", (), 3)[0]
    only_state = WebhookConfig(url=HOOK.url, secret_env="WHS", events=("state",))
    Recorder(lambda n: RetryPolicy(3, 60), webhook_for=lambda n: only_state).record_result(
        c2.attempt_id, c2.token, "BUSY", "17", "", "3", T0)
    assert WebhookEvent.select().count() == 0


def test_webhooks_state_event_written_with_the_move_when_settings_want_it(db):
    camp = make_campaign()
    camp.settings = json.dumps({"webhook": {"url": HOOK.url, "events": ["state"]}})
    camp.save()
    assert campaigns.move(camp, "running", "command start", T0)
    quiet = make_campaign("c2")
    assert campaigns.move(quiet, "running", "command start", T0)
    (event,) = WebhookEvent.select()
    body = json.loads(event.body)
    assert (body["type"], body["data"]) == ("campaign.state", {
        "campaign": "c1", "from": "ready", "to": "running", "cause": "command start",
        "at": T0.isoformat()})
    assert not campaigns.move(camp, "paused", "lost race", T0, expect="ready")
    assert WebhookEvent.select().count() == 1


# ---- delivery (MockTransport receiver) --------------------------------------------------------

class Receiver:
    """Answers per `plan(request, n)` (n: how many requests came so far); records requests."""

    def __init__(self, plan=lambda request, n: httpx.Response(200)):
        self.plan = plan
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return self.plan(request, len(self.requests))

    def received(self):
        return [(r.headers["webhook-id"], json.loads(r.content)) for r in self.requests]


def worker_for(camp, receiver, clock, hook=HOOK):
    lease = Lease(lease_name(camp.id), 1, MIN_TTL_S, clock)
    worker = _CampaignWorker(camp.name, camp.id, lambda name: hook, clock, random.Random(0),
                             lease)
    worker._client = httpx.Client(transport=httpx.MockTransport(receiver))
    return worker


def add_events(camp, count, now):
    for i in range(count):
        webhooks.enqueue(camp.id, "campaign.state", webhooks.body(
            "campaign.state", now, {"campaign": camp.name, "n": i}), now)
    return [e.key for e in WebhookEvent.select().where(WebhookEvent.campaign == camp.id)
            .order_by(WebhookEvent.id)]


def run_until_idle(worker, clock, steps=200):
    for _ in range(steps):
        if worker.step():
            clock.advance(1)


def test_webhooks_delivered_in_order_a_failing_event_blocks_its_campaign_only(db):
    clock = FakeClock(T0)
    a, b = make_campaign("a"), make_campaign("b")
    keys_a, keys_b = add_events(a, 4, T0), add_events(b, 2, T0)
    # a's second event fails three times (500), then goes through
    fails = {"left": 3}

    def plan(request, n):
        if request.headers["webhook-id"] == keys_a[1] and fails["left"]:
            fails["left"] -= 1
            return httpx.Response(500)
        return httpx.Response(204)
    got_a, got_b = Receiver(plan), Receiver()
    wa, wb = worker_for(a, got_a, clock), worker_for(b, got_b, clock)
    for _ in range(3):                  # a is stuck on its second event meanwhile: b goes on
        wa.step()
        wb.step()
    assert [k for k, _ in got_b.received()] == keys_b
    run_until_idle(wa, clock)
    sent = [k for k, _ in got_a.received()]
    assert sent == [keys_a[0]] + [keys_a[1]] * 4 + keys_a[2:]
    rows = {e.key: e for e in WebhookEvent.select()}
    assert {e.status for e in rows.values()} == {"delivered"}
    assert rows[keys_a[1]].tries == 4 and rows[keys_a[0]].tries == 1
    for request in got_a.requests:      # every try signed (at the fake clock's time)
        h = request.headers
        at = dt.datetime.fromtimestamp(int(h["webhook-timestamp"]), UTC)
        assert h["webhook-signature"] == standardwebhooks.Webhook(SECRET).sign(
            h["webhook-id"], at, request.content.decode())


def test_webhooks_failure_records_the_backoff_and_the_error(db):
    clock = FakeClock(T0)
    camp = make_campaign()
    (key,) = add_events(camp, 1, T0)
    worker = worker_for(camp, Receiver(lambda r, n: httpx.Response(
        503, headers={"retry-after": "30"})), clock)
    assert worker.step() == 0
    event = WebhookEvent.get(WebhookEvent.key == key)
    assert (event.status, event.tries, event.last_error) == ("pending", 1, "HTTP 503")
    assert event.next_try_at == to_db(T0 + dt.timedelta(seconds=30))
    assert 0 < worker.step() <= 0.5            # not due yet: nothing sent
    assert WebhookEvent.get(WebhookEvent.key == key).tries == 1


def test_webhooks_gone_disables_the_campaign_and_status_shows_it(db):
    clock = FakeClock(T0)
    camp = make_campaign()
    add_events(camp, 2, T0)
    receiver = Receiver(lambda r, n: httpx.Response(410))
    worker = worker_for(camp, receiver, clock)
    run_until_idle(worker, clock, steps=20)
    assert len(receiver.requests) == 1
    assert webhooks.disabled() == {"c1": {"url": HOOK.url, "at": T0.isoformat()}}
    assert webhooks.backlog(T0 + dt.timedelta(seconds=90)) == {
        "c1": {"pending": 2, "failed": 0, "oldest_s": 90.0}}
    cfg = parse_config(config_data({"url": HOOK.url, "secret_env": "WHS"}), "c.yaml",
                       need_secrets=False)
    rows = status_mod.status(cfg, T0 + dt.timedelta(seconds=90))
    assert rows[0]["webhook"]["disabled"]["url"] == HOOK.url
    text = status_mod.render(rows)
    assert "undelivered 2 (oldest 90 s), failed 0; DISABLED: the receiver answered 410" in text
    webhooks.enable_all()
    assert webhooks.disabled() == {}


def test_webhooks_event_given_up_after_give_up_after_h_then_the_next_goes(db):
    clock = FakeClock(T0)
    camp = make_campaign()
    keys = add_events(camp, 2, T0)

    def plan(request, n):
        if request.headers["webhook-id"] == keys[0]:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200)
    worker = worker_for(camp, Receiver(plan), clock)
    worker.step()
    clock.advance(3600)
    worker.step()
    first, second = WebhookEvent.select().order_by(WebhookEvent.id)
    assert (first.status, first.tries) == ("failed", 2)
    assert first.last_error.startswith("ConnectError: connection refused")
    worker.step()
    assert WebhookEvent.get_by_id(second.id).status == "delivered"
    assert webhooks.backlog(clock.now()) == {"c1": {"pending": 0, "failed": 1, "oldest_s": None}}


# ---- config ------------------------------------------------------------------------------------

def config_data(webhook):
    return {"servers": {"main": {"ami": {"username": "u", "secret": "x"},
                                 "dial_template": "PJSIP/{number}@t"}},
            "campaigns": {"c1": {"caller_id": '"a" <12025550100>', "type": "on_demand",
                                 "on_connect": {"type": "message", "sounds": ["beep"]},
                                 "webhook": webhook}}}


def test_webhooks_config_errors_name_the_key_and_the_fix(monkeypatch):
    monkeypatch.delenv("WHS", raising=False)
    with pytest.raises(ConfigError) as err:
        parse_config(config_data({"url": "ftp://h/x", "secret_env": "WHS",
                                  "events": ["attempt", "calls"], "max_backoff_s": 0}), "c.yaml")
    text = str(err.value)
    assert "4 problems" in text
    assert "campaigns.c1.webhook.url must be an http:// or https:// URL" in text
    assert "campaigns.c1.webhook.events[1] must be one of attempt, state, got 'calls'" in text
    assert "campaigns.c1.webhook.max_backoff_s must be an integer 1..86400, got 0" in text
    assert "campaigns.c1.webhook.secret_env: environment variable WHS is not set" in text
    monkeypatch.setenv("WHS", "not-a-secret-hunter2")
    with pytest.raises(ConfigError) as err:
        parse_config(config_data({"url": "https://u:hunter3@h/x", "secret_env": "WHS"}),
                     "c.yaml")
    text = str(err.value)
    assert "webhook.url must not hold a user or password" in text
    assert "environment variable WHS must hold whsec_ then 24 to 64 random bytes" in text
    assert "hunter" not in text
    with pytest.raises(ConfigError, match="webhook: missing required key 'secret_env'"):
        parse_config(config_data({"url": "https://h/x"}), "c.yaml")


def test_webhooks_config_secret_never_shown_and_needed_only_by_run(monkeypatch):
    monkeypatch.delenv("WHS", raising=False)
    cfg = parse_config(config_data({"url": "https://h/x", "secret_env": "WHS",
                                    "events": ["state"]}), "c.yaml", need_secrets=False)
    assert cfg.campaigns["c1"].webhook.secret is None
    monkeypatch.setenv("WHS", SECRET)
    cfg = parse_config(config_data({"url": "https://h/x", "secret_env": "WHS"}), "c.yaml")
    hook = cfg.campaigns["c1"].webhook
    assert hook.secret == SECRET and hook.events == ("attempt", "state")
    shown = json.dumps(to_display_dict(cfg)) + repr(cfg) + campaign_settings_json(
        cfg.campaigns["c1"])
    assert SECRET[6:] not in shown and SECRET[6:20] not in shown
    assert to_display_dict(cfg)["campaigns"]["c1"]["webhook"] == {
        "url": "https://h/x", "secret_env": "WHS", "events": ["attempt", "state"],
        "timeout_s": 10, "min_backoff_s": 5, "max_backoff_s": 300, "give_up_after_h": 72}


def test_webhooks_delivered_events_purged_after_the_keep_days(db):
    clock = FakeClock(T0)
    camp = make_campaign()
    add_events(camp, 2, T0)
    worker = worker_for(camp, Receiver(), clock)
    run_until_idle(worker, clock, steps=5)
    assert WebhookEvent.select().where(WebhookEvent.status == "delivered").count() == 2
    clock.advance(webhooks.KEEP_DELIVERED_DAYS * 86400 - 60)
    add_events(camp, 1, clock.now())        # newer: kept once delivered
    worker._purged_at = None
    run_until_idle(worker, clock, steps=5)
    assert WebhookEvent.select().count() == 3      # two are 1 min short of the keep time
    clock.advance(3600)
    run_until_idle(worker, clock, steps=5)
    assert WebhookEvent.select().count() == 1


def test_webhooks_deliverer_stops_fast_with_a_hung_receiver(db, monkeypatch):
    """A receiver that accepts the connection and never answers must not hold the stop."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    hook = WebhookConfig(url="http://127.0.0.1:%d/" % listener.getsockname()[1],
                         secret_env="WHS", secret=SECRET, timeout_s=300)
    camp = make_campaign()
    add_events(camp, 1, SystemClock().now())
    deliverer = Deliverer(lambda name: hook, ["c1"], node=1)
    try:
        deliverer.start()
        conn, _ = listener.accept()         # the POST is under way and will not be answered
        began = time.monotonic()
        deliverer.stop()
        took = time.monotonic() - began
    finally:
        listener.close()
    assert took < 5                          # JOIN_S (1 s) plus a busy machine's slack
    assert WebhookEvent.get().status == "pending"
    conn.close()
