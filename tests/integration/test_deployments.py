"""Promises on ordinary deployments, against the real Asterisk 22: two servers under a SIGKILL
storm, an AMI outage during a long conference call, two dialers sharing one Asterisk, and a
stop while a conference call is up. Every check counts callee legs with Asterisk's own events
(harness.ChannelMonitor)."""
import collections
import random
import signal
import time

import pytest

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock
from agi_campaign.db import database
from agi_campaign.deployment import instance_name
from agi_campaign.models import Attempt, open_database
from agi_campaign.testing import harness
from agi_campaign.testing.sandbox import CONFERENCE

from tests.integration.support import (TcpProxy, Via, campaign, check_invariants, load,
                                       numbers_of, plan_numbers, prepared_service, state,
                                       wait_for)

pytestmark = pytest.mark.asterisk

CONFERENCE_CALL = {"type": "conference", "room": CONFERENCE}


def _reopen(config):
    """Bind the models to another deployment's database."""
    database.obj.close_all()
    open_database(config.database.url)


def _in_flight():
    return Attempt.select().where(Attempt.status != "ended").count()


def test_deploy_two_servers_sigkill_storm_completes_and_recovers_on_both(asterisk,
                                                                          asterisk_factory,
                                                                          tmp_path):
    west = asterisk_factory()
    plans = {"east": plan_numbers(200, 40000, seed=21), "west": plan_numbers(200, 41000, seed=22)}
    max_channels, max_attempts = 15, 3
    camp = dict(max_channels=max_channels, max_attempts=max_attempts, delay_ms=0,
                retry_delay_s=2, on_connect={"type": "message", "sounds": ["silence/2"]})
    _, service = prepared_service(tmp_path, {"a": asterisk, "b": west}, {
        "east": campaign(server="a", **camp), "west": campaign(server="b", **camp)}, plans)
    rng = random.Random(7)
    with harness.ChannelMonitor(asterisk) as mon_a, harness.ChannelMonitor(west) as mon_b:
        try:
            service.start()
            for _ in range(5):
                time.sleep(rng.uniform(2.0, 5.0))
                service.kill()
                time.sleep(rng.uniform(1.5, 2.5))  # calls end meanwhile: AstDB keeps them
                service.start()
            wait_for(lambda: {state("east"), state("west")} == {"completed"}, 240, step=1)
        finally:
            service.stop()
    figures = {}
    for name, mon in (("east", mon_a), ("west", mon_b)):
        figures[name] = check_invariants(name, plans[name], mon, max_attempts, max_channels)
    recovered = collections.Counter(a.server for a in Attempt.select().where(
        Attempt.note.startswith("recovered from AstDB")))
    print("FIGURES two servers, 5 SIGKILLs: recovered from AstDB by server %s" % dict(recovered))
    assert service.starts - 1 == 5
    assert _in_flight() == 0
    assert recovered["a"] >= 1 and recovered["b"] >= 1


def test_deploy_long_conference_call_survives_an_ami_outage(dialer, asterisk, tmp_path):
    """A call longer than stuck_after_s, then AMI down for a reconcile pass (shorter than
    stuck_after_s): the call is never marked lost, the callee never rung twice."""
    proxy = TcpProxy(asterisk.ami_port)
    phone = harness.callee_number(42000, "answer", hold_s=0)  # stays on the line 60 s
    stuck_after_s = 12
    try:
        with harness.ChannelMonitor(asterisk) as mon:
            dialer.start({"conf": campaign(max_channels=1, max_attempts=3, retry_delay_s=0,
                                           on_connect=CONFERENCE_CALL)},
                         {"main": Via(asterisk, proxy.port)}, stuck_after_s=stuck_after_s)
            load("conf", [phone], tmp_path)
            campaigns.apply_command("conf", "start", SystemClock().now())
            wait_for(lambda: Attempt.select().where(Attempt.status == "answered").count() == 1,
                     20, step=0.1)
            time.sleep(stuck_after_s + 2)  # the call is now older than stuck_after_s
            proxy.refuse = True
            assert proxy.cut() >= 1
            time.sleep(7)  # at least one reconcile pass (every 5 s) sees AMI down
            att = Attempt.get()
            assert att.status == "answered", (att.outcome, att.note)
            proxy.refuse = False
            time.sleep(9)  # AMI back, dialing settles, reconcile passes see the call live
            att = Attempt.get()
            assert att.status == "answered", (att.outcome, att.note)
            assert mon.dialed[phone[1:]] == 1 and mon.started == 1
            asterisk.cli("channel request hangup all")  # the conference call ends
            wait_for(lambda: state("conf") == "completed", 30)
        att = Attempt.get()
        print("FIGURES conference call of %.0f s across an AMI outage: outcome %s, legs %d"
              % (att.duration_s, att.outcome, mon.started))
        assert Attempt.select().count() == 1 and att.outcome == "answered"
        assert mon.started == 1 and mon.number_peak == 1
    finally:
        proxy.close()


def test_deploy_two_dialers_share_one_asterisk_without_touching_each_other(asterisk, tmp_path):
    """Two deployments, each with its own database (so the same attempt ids): one's failing
    originates and AstDB keys never end or feed the other's attempts."""
    setups = {}
    answer = {harness.callee_number(43000 + i, "answer", hold_s=0): "answer" for i in range(8)}
    fail = {harness.callee_number(43100 + i, kind): kind
            for i, kind in enumerate(["busy", "congestion", "unavailable"] * 4)}
    long_message = {"type": "message", "sounds": ["silence/10", "silence/5"]}  # ~15 s
    for name, plan, on_connect, instance in (("alpha", answer, long_message, None),
                                             ("beta", fail, None, "beta")):
        work = tmp_path / name
        work.mkdir()
        extra = {"instance": instance} if instance else {}
        camp = campaign(max_channels=8, max_attempts=2, retry_delay_s=1,
                        **({"on_connect": on_connect} if on_connect else {}))
        config, service = prepared_service(work, {"main": asterisk}, {name: camp},
                                           {name: plan}, **extra)
        setups[name] = (config, plan, service, instance or instance_name())
    assert setups["alpha"][3] != "beta"
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            for config, plan, service, _ in setups.values():
                service.start()
            for name, (config, *_rest) in setups.items():
                _reopen(config)
                wait_for(lambda: state(name) == "completed", 120, step=0.5)
        finally:
            for *_rest, service, _ in setups.values():
                service.stop()
    for name, (config, plan, service, instance) in setups.items():
        _reopen(config)
        # Asterisk's peak counts both deployments' calls: 8 channels each.
        others = [p[1:] for p in (fail if name == "alpha" else answer)]
        figures = check_invariants(name, plan, mon, 2, 16, instance=instance, others=others)
        ids = {a.id for a in Attempt.select()}
        print("FIGURES deployment %s (instance %s): %s" % (name, instance, figures["outcomes"]))
        assert ids & mon.ids_of(instance) == ids  # every attempt's channel seen, as its own
    _reopen(setups["alpha"][0])
    assert {a.outcome for a in Attempt.select()} == {"answered"}
    assert {n.status for n in numbers_of("alpha").values()} == {"done"}
    overlap = mon.ids_of(setups["alpha"][3]) & mon.ids_of("beta")
    assert len(overlap) == 8  # both dialed attempts 1..8 through one Asterisk


def test_deploy_sigterm_with_a_conference_call_up_exits_in_time(asterisk, tmp_path):
    """Stop ends within stop_deadline_s although a conference call is up; the call goes on in
    Asterisk and its result is recorded by the next start."""
    stop_deadline_s = 6
    phone = harness.callee_number(44000, "answer", hold_s=0)
    _, service = prepared_service(tmp_path, {"main": asterisk}, {
        "term": campaign(max_channels=1, on_connect=CONFERENCE_CALL)}, {"term": [phone]},
        stop_deadline_s=stop_deadline_s)
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start()
            wait_for(lambda: Attempt.select().where(Attempt.status == "answered").count() == 1,
                     20, step=0.1)
            service.signal(signal.SIGTERM)
            t0 = time.monotonic()
            code = service.wait(stop_deadline_s + 30)
            took = time.monotonic() - t0
            assert code == 0, service.log_tail()
            assert took <= stop_deadline_s + 1.5, took  # + process start-up/tear-down slack
            assert len(mon.live) == 1  # the call is still up in Asterisk
            service.start()
            time.sleep(7)  # a reconcile pass of the new service sees the call live
            assert Attempt.get().status == "answered"
            service.stop_twice()  # two signals: out at once, call or no call
            t0 = time.monotonic()
            assert service.wait(10) == 1
            second = time.monotonic() - t0
            assert second < 5.0, second
            service.start()
            asterisk.cli("channel request hangup all")
            wait_for(lambda: state("term") == "completed", 30)
        finally:
            service.stop()
    att = Attempt.get()
    print("FIGURES stop with a conference call up: exit 0 after %.1f s (stop_deadline_s %d); "
          "second signal: exit 1 after %.2f s; outcome %s"
          % (took, stop_deadline_s, second, att.outcome))
    assert att.outcome == "answered" and mon.started == 1
