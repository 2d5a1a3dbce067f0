"""Faults against the real Asterisk 22: SIGKILL storms, AMI drops, Asterisk restarts, refused
logins, FastAGI connections cut mid-call, graceful stop."""
import collections
import logging
import random
import signal
import time

import pytest

from agi_campaign import campaigns, dnc, harness
from agi_campaign.clock import SystemClock
from agi_campaign.config import load_config
from agi_campaign.db import open_database
from agi_campaign.errors import StartupError
from agi_campaign.models import Attempt, Number
from agi_campaign.sandbox import free_port
from agi_campaign.service import Service

from tests.integration.conftest import wait_for
from tests.integration.support import ServiceProcess, TcpProxy
from tests.integration.test_campaign_e2e import campaign, load, numbers_of, state

MIX = [("answer", 60), ("busy", 15), ("noanswer", 10), ("congestion", 10), ("unavailable", 5)]


def plan_numbers(count, first, seed):
    rng = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    return {harness.callee_number(first + i, k, hold_s=rng.randint(1, 3)): k
            for i, k in ((i, rng.choice(kinds)) for i in range(count))}


def prepare_db(config, name, phones, tmp_path, dnc_phones=()):
    open_database(config.database.url)
    campaigns.sync_campaigns(config, SystemClock().now())
    row = load(name, phones, tmp_path)
    if dnc_phones:
        dnc.add("blocked", list(dnc_phones), "US", SystemClock().now(), source="test",
                known_lists=list(config.dnc_lists))
    campaigns.apply_command(name, "start", SystemClock().now())
    return row


def check_invariants(name, plan, mon, max_attempts, max_channels, dnc_phones=(), instance=None,
                     others=()):
    """Every promise, with Asterisk's own count of callee legs (`mon`); `instance`: only this
    deployment's channels count; `others`: numbers (digits) other campaigns or deployments
    dialed through the same Asterisk — any other leg is a call nobody asked for."""
    nums = numbers_of(name)
    atts = collections.defaultdict(list)
    refused = Attempt.select().where(Attempt.outcome == "refused").count()
    for att in Attempt.select(Attempt, Number).join(Number).where(
            (Attempt.outcome.is_null()) | (Attempt.outcome != "refused")):
        atts[att.number.phone].append(att)  # refused originates placed no call
    unfinished = [p for p, n in nums.items() if n.status not in ("done", "failed", "dnc")]
    over = [p for p, lst in atts.items() if len(lst) > max_attempts]
    in_flight = Attempt.select().where(Attempt.status != "ended").count()
    db_ids = {a.id for lst in atts.values() for a in lst}
    unseen = mon.ids_of(instance) - db_ids  # a refused originate has no channel
    legs_over = [n for n, c in mon.dialed.items()  # legs Asterisk placed beyond our attempts
                 if "+" + n in nums and c > len(atts.get("+" + n, []))]
    strangers = [n for n in mon.dialed if "+" + n not in nums and n not in others]
    dnc_dialed = [p for p in dnc_phones if p[1:] in mon.dialed]
    wrong = [p for p, kind in plan.items() if p in nums and nums[p].status == "done"
             and kind != "answer"]
    outcomes = collections.Counter(a.outcome for lst in atts.values() for a in lst)
    recovered = sum(1 for lst in atts.values() for a in lst if (a.note or "").startswith(
        "recovered"))
    figures = {"numbers": len(nums), "attempts": len(db_ids), "legs_seen_by_asterisk":
               mon.started, "peak_concurrent_calls": mon.peak, "max_channels": max_channels,
               "peak_calls_per_number": mon.number_peak, "unfinished": len(unfinished),
               "over_max_attempts": len(over), "left_in_flight": in_flight,
               "asterisk_calls_without_attempt": len(unseen) + len(legs_over),
               "dnc_dialed": len(dnc_dialed), "wrongly_done": len(wrong),
               "recovered_from_astdb": recovered, "refused_originates": refused,
               "outcomes": dict(outcomes)}
    print("FIGURES", figures)
    assert unfinished == [] and over == [] and in_flight == 0
    assert unseen == set() and legs_over == [] and strangers == []
    assert dnc_dialed == [] and wrong == []
    assert mon.number_peak <= 1
    assert mon.peak <= max_channels
    return figures


def test_fault_sigkill_storm_loses_nothing_and_calls_nobody_twice(asterisk, tmp_path):
    plan = plan_numbers(1000, 20000, seed=11)
    phones = list(plan)
    dnc_phones = random.Random(5).sample(phones, 20)
    max_channels, max_attempts = 60, 3
    port = free_port()
    path = harness.write_config(tmp_path / "config.yaml", {"main": asterisk}, port, {
        "chaos": campaign(max_channels=max_channels, max_attempts=max_attempts, delay_ms=0,
                          retry_delay_s=2, on_connect={"type": "message",
                                                       "sounds": ["silence/2"]})})
    config = load_config(str(path))
    prepare_db(config, "chaos", phones, tmp_path, dnc_phones)
    service = ServiceProcess(path, tmp_path / "service.log")
    rng = random.Random(1)
    began = time.monotonic()
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start(ready_port=port)
            for _ in range(10):
                time.sleep(rng.uniform(1.0, 5.0))
                service.kill()
                time.sleep(rng.uniform(0.0, 1.0))
                service.start(ready_port=port)
            wait_for(lambda: state("chaos") == "completed", 200, step=1)
        finally:
            service.stop()
    figures = check_invariants("chaos", plan, mon, max_attempts, max_channels, dnc_phones)
    print("FIGURES kills=%d seconds=%.0f" % (service.starts - 1, time.monotonic() - began))
    assert service.starts - 1 >= 10
    assert figures["numbers"] == 1000 - 0  # DNC numbers were imported, then blocked at claim
    assert sum(1 for n in numbers_of("chaos").values() if n.status == "dnc") == len(dnc_phones)


def test_fault_ami_connection_dropped_campaign_completes(dialer, asterisk, tmp_path):
    proxy = TcpProxy(asterisk.ami_port)
    plan = plan_numbers(40, 30000, seed=2)
    try:
        with harness.ChannelMonitor(asterisk) as mon:
            servers = {"main": _Via(asterisk, proxy.port)}
            dialer.start({"amidrop": campaign(max_channels=5, max_attempts=3)}, servers)
            load("amidrop", list(plan), tmp_path)
            campaigns.apply_command("amidrop", "start", SystemClock().now())
            for _ in range(3):
                wait_for(lambda: mon.started >= 5, 20, step=0.05)
                time.sleep(1)
                assert proxy.cut() >= 1
            wait_for(lambda: state("amidrop") == "completed", 120, step=0.5)
        check_invariants("amidrop", plan, mon, 3, 5)
    finally:
        proxy.close()


def test_fault_asterisk_restarted_mid_campaign(dialer, asterisk_factory, tmp_path):
    ast = asterisk_factory()
    phones = [harness.callee_number(31000 + i, "answer", hold_s=3) for i in range(20)]
    dialer.start({"restart": campaign(max_channels=5, max_attempts=3)}, {"main": ast})
    load("restart", phones, tmp_path)
    campaigns.apply_command("restart", "start", SystemClock().now())
    wait_for(lambda: Attempt.select().count() >= 5, 20, step=0.05)
    ast.restart()
    wait_for(lambda: state("restart") == "completed", 150, step=0.5)
    nums = numbers_of("restart")
    assert {n.status for n in nums.values()} == {"done"}
    assert max(n.attempts for n in nums.values()) <= 3
    assert Attempt.select().where(Attempt.status != "ended").count() == 0
    cut = Attempt.select().where(Attempt.outcome != "answered").count()
    print("FIGURES attempts cut by the restart, then retried: %d" % cut)
    assert cut >= 1


def test_fault_server_refusing_logins_does_not_stop_the_other(dialer, asterisk,
                                                              asterisk_factory, tmp_path,
                                                              caplog):
    bad = asterisk_factory()
    bad.secret = "wrong-" + bad.secret  # the config gets a secret Asterisk refuses
    phones = [harness.callee_number(32000 + i, "answer") for i in range(6)]
    caplog.set_level(logging.INFO)
    dialer.start({"good": campaign(server="good"), "refused": campaign(server="bad")},
                 {"good": asterisk, "bad": bad})
    load("good", phones, tmp_path)
    load("refused", [harness.callee_number(32100, "answer")], tmp_path)
    campaigns.apply_command("good", "start", SystemClock().now())
    campaigns.apply_command("refused", "start", SystemClock().now())
    wait_for(lambda: state("good") == "completed", 60)
    assert Attempt.select().where(
        Attempt.campaign == campaigns.get_campaign("refused")).count() == 0
    assert "server=bad" in caplog.text
    assert bad.secret not in caplog.text


def test_fault_service_refuses_to_start_when_no_server_accepts_login(asterisk, tmp_path):
    class Wrong:
        ami_credentials = asterisk.ami_credentials._replace(secret="nope")
    path = harness.write_config(tmp_path / "c.yaml", {"main": Wrong()}, free_port(),
                                {"x": campaign()})
    service = Service(load_config(str(path)))
    with pytest.raises(StartupError, match="no Asterisk server accepted our AMI login") as err:
        service.start()
    assert "nope" not in str(err.value)


def test_fault_fastagi_connection_cut_mid_call_is_still_recorded(dialer, asterisk, tmp_path):
    fastagi_port = free_port()
    proxy = TcpProxy(fastagi_port)
    phones = [harness.callee_number(33000 + i, "answer", hold_s=9) for i in range(6)]
    try:
        config = _write_with_agi(dialer, asterisk, tmp_path, fastagi_port, proxy.port, {
            "cut": campaign(max_channels=6, on_connect={"type": "message",
                                                        "sounds": ["silence/8"]})})
        load("cut", phones, tmp_path)
        campaigns.apply_command("cut", "start", SystemClock().now())
        wait_for(lambda: Attempt.select().where(Attempt.status == "answered").count() == 6, 20,
                 step=0.05)
        assert proxy.cut() >= 6
        wait_for(lambda: state("cut") == "completed", 40)
    finally:
        proxy.close()
    atts = list(Attempt.select())
    assert len(atts) == 6
    assert {a.outcome for a in atts} == {"answered"}
    assert {a.dest_result for a in atts} == {"hangup_during_message"}
    assert {n.status for n in numbers_of("cut").values()} == {"done"}
    assert config is not None


def test_fault_sigterm_stops_gracefully_and_second_signal_at_once(asterisk, tmp_path):
    phones = [harness.callee_number(34000 + i, "answer", hold_s=9) for i in range(30)]
    port = free_port()
    path = harness.write_config(tmp_path / "config.yaml", {"main": asterisk}, port, {
        "term": campaign(max_channels=5, on_connect={"type": "message",
                                                     "sounds": ["silence/3"]})},
        stop_deadline_s=30)
    config = load_config(str(path))
    prepare_db(config, "term", phones, tmp_path)
    service = ServiceProcess(path, tmp_path / "service.log")
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start(ready_port=port)
            wait_for(lambda: mon.started >= 5, 20, step=0.05)
            service.signal(signal.SIGTERM)
            at_term = mon.started
            t0 = time.monotonic()
            assert service.wait(40) == 0, service.log_tail()
            took = time.monotonic() - t0
            assert mon.started <= at_term + 0  # no new call after SIGTERM
            assert Attempt.select().where(Attempt.status != "ended").count() == 0
            done = Attempt.select().count()
            assert done == at_term and took >= 1.0
            print("FIGURES graceful stop: %d calls in flight recorded in %.1f s" % (done, took))
            # Second run: two signals in a row stop at once; recovery covers the cut calls.
            service.start(ready_port=port)
            wait_for(lambda: Attempt.select().where(Attempt.status != "ended").count() >= 3,
                     20, step=0.05)
            service.signal(signal.SIGTERM)
            time.sleep(0.2)
            service.signal(signal.SIGTERM)
            t0 = time.monotonic()
            assert service.wait(10) == 1
            assert time.monotonic() - t0 < 5
            service.start(ready_port=port)
            wait_for(lambda: state("term") == "completed", 120, step=0.5)
        finally:
            service.stop()
    nums = numbers_of("term")
    assert {n.status for n in nums.values()} == {"done"}
    assert max(n.attempts for n in nums.values()) <= 3
    assert mon.number_peak <= 1


class _Via:
    """An AsteriskSandbox seen through a proxy port (for the AMI connection only)."""

    def __init__(self, sandbox, port):
        self.ami_credentials = sandbox.ami_credentials._replace(port=port)
        self.name = sandbox.name
        self.running = False


def _write_with_agi(dialer, asterisk, tmp_path, fastagi_port, agi_port, campaigns_):
    path = harness.write_config(tmp_path / "config.yaml", {"main": asterisk}, fastagi_port,
                                campaigns_)
    text = path.read_text().replace("agi://127.0.0.1:%d" % fastagi_port,
                                    "agi://127.0.0.1:%d" % agi_port)
    path.write_text(text)
    config = load_config(str(path))
    service = Service(config)
    service.start()
    dialer.services.append(service)
    dialer.sandboxes.append(asterisk)
    return config

