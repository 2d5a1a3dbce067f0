"""Helpers of the integration tests (test modules import them from here, never from each
other): campaign configs and numbers for the sandbox Asterisk, the dialer service in process
(`Dialer`) or as a child process (`prepared_service`), the checks every fault test makes
(`check_invariants`), polling (`wait_for`), and a TCP proxy whose connections can be cut."""
import collections
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from agi_campaign import campaigns, dnc, importer
from agi_campaign.clock import SystemClock, from_db
from agi_campaign.config import load_config
from agi_campaign.models import Attempt, Campaign, Number, open_database
from agi_campaign.service import Service
from agi_campaign.testing import harness
from agi_campaign.testing.process import PACKAGE_PARENT, ServiceProcess
from agi_campaign.testing.sandbox import free_port

# The outcome the dialer must record for each callee behaviour of harness.callee_number.
EXPECTED_OUTCOME = {"answer": "answered", "busy": "busy", "noanswer": "noanswer",
                    "congestion": "congestion", "unavailable": "unavailable"}

# How often each behaviour occurs in plan_numbers (weights).
MIX = [("answer", 60), ("busy", 15), ("noanswer", 10), ("congestion", 10), ("unavailable", 5)]

BASE = {"caller_id": '"e2e" <12025550100>', "type": "on_demand", "dial_timeout_s": 5,
        "max_attempts": 2, "retry_delay_s": 1, "dnc_lists": ["blocked"],
        "on_connect": {"type": "message", "sounds": ["beep"]}}


def wait_for(predicate, timeout, step=0.2):
    """Poll `predicate` until it is true; return the seconds it took (or fail)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        time.sleep(step)
    pytest.fail("condition not met within %s s" % timeout, pytrace=False)


def cli(config, *args):
    """`agi-campaign --config CONFIG ARGS...` in a child process (CompletedProcess)."""
    return subprocess.run([sys.executable, "-m", "agi_campaign.cli", "--config", str(config)]
                          + [str(a) for a in args], capture_output=True, text=True,
                          cwd=PACKAGE_PARENT, timeout=60)


# ---- campaigns and numbers ------------------------------------------------------------------

def campaign(**kw):
    """A campaign's config: BASE with `kw` on top."""
    out = dict(BASE)
    out.update(kw)
    return out


def load(name, phones, tmp_path):
    """Import `phones` into campaign `name` through a CSV file (every one must be imported)."""
    row = campaigns.get_campaign(name)
    path = harness.write_csv(tmp_path / ("%s.csv" % name), phones)
    report = importer.import_csv(row.id, str(path), "US", ("blocked",), SystemClock().now())
    assert report.imported == len(set(phones))
    return row


def state(name):
    return Campaign.get(Campaign.name == name).state


def numbers_of(name):
    """{phone: Number} of campaign `name`."""
    row = Campaign.get(Campaign.name == name)
    return {n.phone: n for n in Number.select().where(Number.campaign == row)}


def attempts_by_phone(name):
    """{phone: [Attempt, ...]} of campaign `name`."""
    out = collections.defaultdict(list)
    row = Campaign.get(Campaign.name == name)
    for att in Attempt.select(Attempt, Number).join(Number).where(Attempt.campaign == row):
        out[att.number.phone].append(att)
    return out


def destinations_recorded(*names):
    """True once every answered (or machine) attempt of campaigns `names` has its dest_result:
    it is queued, not waited for, and may land after the outcome that completes a campaign
    (the hangup handler's `result` session can start before `connect` returns)."""
    return all(att.dest_result is not None for name in names
               for atts in attempts_by_phone(name).values() for att in atts
               if att.outcome in ("answered", "machine"))


def _iso(value):
    """CSV times are UTC ISO 8601 to the second (truncated)."""
    value = from_db(value)
    return value.isoformat(timespec="seconds") if value is not None else ""


def _text(value):
    return "" if value is None else str(value)


def expected_export():
    """The attempt table as the export should show it, built from the ORM (not the export's
    own query), in id order."""
    rows = []
    for a in Attempt.select(Attempt, Number).join(Number).order_by(Attempt.id):
        rows.append([a.number.phone, str(a.seq), _text(a.server), _iso(a.created_at),
                     _iso(a.answered_at), _iso(a.ended_at), _text(a.outcome),
                     _text(a.dial_status), _text(a.hangup_cause), _text(a.duration_s),
                     _text(a.billsec_s), _text(a.dest_result), _text(a.amd_status),
                     _text(a.amd_cause), _text(a.digits), "yes" if a.opted_out else "",
                     _text(a.note)])
    return rows


def plan_numbers(count, first, seed, mix=MIX, longest_hold_s=3):
    """{callee number: behaviour} for `count` numbers from index `first`, behaviours drawn
    with the weights of `mix` (as MIX), hold times 1..`longest_hold_s` s."""
    rng = random.Random(seed)
    kinds = [k for k, w in mix for _ in range(w)]
    return {harness.callee_number(first + i, k, hold_s=rng.randint(1, longest_hold_s)): k
            for i, k in ((i, rng.choice(kinds)) for i in range(count))}


def prepare_db(config, name, phones, tmp_path, dnc_phones=()):
    """Open `config`'s database here, load `phones` into campaign `name`, put `dnc_phones` on
    the "blocked" list and start the campaign (for a service started afterwards)."""
    open_database(config.database.url)
    campaigns.sync_campaigns(config, SystemClock().now())
    row = load(name, phones, tmp_path)
    if dnc_phones:
        dnc.add("blocked", list(dnc_phones), "US", SystemClock().now(), source="test",
                known_lists=list(config.dnc_lists))
    campaigns.apply_command(name, "start", SystemClock().now())
    return row


# ---- the service ----------------------------------------------------------------------------

class Dialer:
    """Starts agi_campaign.service.Service (FastAGI + scheduler) in this process on a written
    config (the `dialer` fixture); `close()` stops the services and hangs up the sandboxes'
    calls."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.services = []
        self.sandboxes = []

    def start(self, campaigns, servers, port=None, **kwargs):
        """Service for `campaigns` on `servers` listening for FastAGI on `port` (a free one by
        default); `kwargs` as harness.write_config. Returns (service, config)."""
        path = harness.write_config(self.tmp_path / "config.yaml", servers, port or free_port(),
                                    campaigns, **kwargs)
        self.sandboxes.extend(servers.values())
        config = load_config(str(path))
        service = Service(config)
        service.start()
        self.services.append(service)
        return service, config

    def close(self):
        for service in self.services:
            service.stop(graceful=False)
        for box in self.sandboxes:
            if box.running:
                box.cli("channel request hangup all")
                box.wait_channels(0, timeout=10)


def prepared_service(workdir, servers, campaigns_, numbers, dnc_phones=(), **config):
    """A config in `workdir` for `campaigns_` on `servers` (`config`: as harness.write_config),
    each campaign's numbers ({name: phones}) loaded and the campaign started (prepare_db), and
    the service as a child process, not started yet. Returns (config, ServiceProcess)."""
    path = harness.write_config(workdir / "config.yaml", servers, free_port(), campaigns_,
                                **config)
    loaded = load_config(str(path))
    for name, phones in numbers.items():
        prepare_db(loaded, name, list(phones), workdir, dnc_phones)
    return loaded, ServiceProcess(path, workdir / "service.log", loaded.fastagi.port)


class Via:
    """An AsteriskSandbox seen through a proxy port (for the AMI connection only)."""

    def __init__(self, sandbox, port):
        self.ami_credentials = sandbox.ami_credentials._replace(port=port)
        self.name = sandbox.name
        self.running = False


# ---- what every fault test checks -----------------------------------------------------------

def check_invariants(name, plan, mon, max_attempts, max_channels, dnc_phones=(), instance=None,
                     others=()):
    """Every promise, with Asterisk's own count of callee legs (`mon`); `instance`: only this
    deployment's channels count; `others`: numbers (digits) other campaigns or deployments
    dialed through the same Asterisk — any other leg is a call nobody asked for."""
    assert not mon.blind, "monitor blind: %s (%d AMI drops, %d resynchronised)" % (
        mon.gave_up or "its AMI session is down", mon.drops, mon.resyncs)
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
               "recovered_from_astdb": recovered, "monitor_drops": mon.drops,
               "refused_originates": refused,
               "outcomes": dict(outcomes)}
    print("FIGURES", figures)
    assert unfinished == [] and over == [] and in_flight == 0
    assert unseen == set() and legs_over == [] and strangers == []
    assert dnc_dialed == [] and wrong == []
    assert mon.number_peak <= 1
    assert mon.peak <= max_channels
    return figures


# ---- a TCP proxy whose connections can be cut ----------------------------------------------

class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every open connection; while
    `refuse` is set, new connections are closed at once (the target looks down)."""

    def __init__(self, target_port, port=0):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.cuts = 0
        self.refuse = False
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self._lock:
            conns, self.conns = self.conns, []
            self.cuts += 1
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        return len(conns) // 2

    def close(self):
        self._stop = True
        self.sock.close()
        self.cut()
