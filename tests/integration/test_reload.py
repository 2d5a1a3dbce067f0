"""Live config reload and the service heartbeat, against the real Asterisk 22 and the real
service (`agi-campaign run` as a child process). Callee legs are counted per campaign from
Asterisk's own events (harness.ChannelMonitor)."""
import collections
import signal
import time

import pytest
import yaml

from agi_campaign import campaigns, heartbeat
from agi_campaign.clock import SystemClock
from agi_campaign.config import load_config
from agi_campaign.models import Attempt, Campaign
from agi_campaign.testing import harness

from tests.integration.support import (attempts_by_phone, campaign, cli, load, numbers_of,
                                       prepared_service, state, wait_for)

pytestmark = pytest.mark.asterisk

ERROR = "agi-campaign: error: "


class CampaignLegs(harness.ChannelMonitor):
    """ChannelMonitor that also counts the live legs of each campaign (by its numbers) and
    their peak in each phase of the test (`enter`)."""

    def __init__(self, sandbox, groups):
        super().__init__(sandbox)
        self.group_of = {p[1:]: name for name, phones in groups.items() for p in phones}
        self.group_live = collections.Counter()
        self.peaks = collections.defaultdict(collections.Counter)
        self.phase = "before"

    def _began(self, channel, at):
        super()._began(channel, at)
        group = self.group_of.get(self._number(channel))
        self.group_live[group] += 1
        peaks = self.peaks[self.phase]
        peaks[group] = max(peaks[group], self.group_live[group])

    def _ended(self, channel, at):
        super()._ended(channel, at)
        self.group_live[self.group_of.get(self._number(channel))] -= 1

    def enter(self, phase):
        """Peaks from now on count in `phase` (starting from the legs up now)."""
        with self._lock:
            self.phase = phase
            self.peaks[phase] = collections.Counter(+self.group_live)


def write(path, data):
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)


def last_reload(now=None):
    info = heartbeat.read(now or SystemClock().now())
    return info and info["reload"]


def wait_reload(before, timeout=15):
    """The heartbeat's reload record once it differs from `before` (and the seconds it took)."""
    took = wait_for(lambda: last_reload() not in (None, before), timeout, step=0.05)
    return last_reload(), took


def test_reload_adds_a_campaign_raises_a_cap_keeps_it_on_a_bad_file_pauses_a_removed_one(
        asterisk, tmp_path):
    """SIGHUP: A's max_channels 2 -> 5 and campaign B added; then an invalid file (SIGHUP and
    `agi-campaign reload`: refused, A's cap stays 5); then B removed by `agi-campaign reload`
    while its calls are up: B paused, its calls finish answered. No call dropped."""
    hold = dict(on_connect={"type": "message", "sounds": ["silence/9"]}, max_attempts=1,
                delay_ms=0, retry_delay_s=1, dial_timeout_s=10)
    a_phones = [harness.callee_number(46000 + i, "answer", hold_s=4) for i in range(30)]
    b_phones = [harness.callee_number(46100 + i, "answer", hold_s=3) for i in range(24)]
    config, service = prepared_service(tmp_path, {"main": asterisk},
                                       {"a": campaign(max_channels=2, **hold)},
                                       {"a": a_phones})
    path = config.path
    with open(path, encoding="utf-8") as fh:
        first = yaml.safe_load(fh)
    second = dict(first, campaigns={"a": dict(first["campaigns"]["a"], max_channels=5),
                                    "b": campaign(max_channels=2, **hold)})
    invalid = dict(first, campaigns={"a": dict(first["campaigns"]["a"], max_channels=8),
                                     "b": dict(second["campaigns"]["b"], max_channels="lots")})
    figures = {}
    with CampaignLegs(asterisk, {"a": a_phones, "b": b_phones}) as mon:
        try:
            service.start()
            wait_for(lambda: (heartbeat.read(SystemClock().now()) or {}).get("ticking"), 20)
            out = cli(path, "status")
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("service running on ") and " pid %d, last tick " % (
                service.pid) in out.stdout
            # before: A alone at max_channels 2, long calls keep it at its cap
            wait_for(lambda: mon.dialed and sum(
                mon.dialed[p[1:]] for p in a_phones) >= 5, 40, step=0.1)
            # B's numbers go in while the service does not know B yet
            write(path, second)
            campaigns.sync_campaigns(load_config(str(path)), SystemClock().now())
            load("b", b_phones, tmp_path)
            campaigns.apply_command("b", "start", SystemClock().now())
            before = last_reload()
            mon.enter("after")
            service.signal(signal.SIGHUP)
            record, figures["reload_latency_s"] = wait_reload(before)
            assert record["ok"] and record["text"] == "campaigns added: b; changed: a", record
            wait_for(lambda: mon.peaks["after"]["a"] > 2 and mon.peaks["after"]["b"] >= 1, 30,
                     step=0.1)
            # an invalid file: refused with check-config's message, the old config stays
            write(path, invalid)
            checked = cli(path, "check-config")
            assert checked.returncode == 2 and checked.stderr.startswith(ERROR)
            assert "campaigns.b.max_channels must be an integer" in checked.stderr
            pending_a = sum(1 for n in numbers_of("a").values() if n.status == "pending")
            mon.enter("invalid")
            before = last_reload()
            service.signal(signal.SIGHUP)
            record, _ = wait_reload(before)
            assert not record["ok"] and ERROR + record["text"] + "\n" == checked.stderr
            assert record["text"] in service.log_since_start()
            refused = cli(path, "reload")
            assert (refused.returncode, refused.stdout, refused.stderr) == (
                2, "", checked.stderr)
            time.sleep(6)  # A dials on at its cap of 5, not the invalid file's 8
            # B removed from the file: paused, its calls in flight finish and are recorded
            write(path, dict(second, campaigns={"a": second["campaigns"]["a"]}))
            b_row = Campaign.get(Campaign.name == "b")
            b_up = {a.id for a in Attempt.select().where((Attempt.campaign == b_row)
                                                         & (Attempt.status != "ended"))}
            applied = cli(path, "reload")
            assert applied.returncode == 0, applied.stderr
            assert applied.stdout.startswith("reloaded by the service on host ")
            assert applied.stdout.rstrip().endswith(": campaigns paused: b")
            out = cli(path, "status").stdout
            assert "service running on" in out and ": applied: campaigns paused: b\n" in out
            wait_for(lambda: state("a") == "completed" and Attempt.select().where(
                Attempt.status != "ended").count() == 0, 90, step=0.5)
            assert state("b") == "paused"
            service.stop(graceful=True)
            assert service.proc.returncode == 0
        finally:
            service.stop()
    out = cli(path, "status", "--json")
    assert '"running": false' in out.stdout and "service not running (last seen" in out.stdout
    assert cli(path, "status").stdout.startswith("service not running (last seen ")
    # every number of A and every dialed one of B called once, answered, recorded; B's others
    # wait (pending, never dialed); nothing lost or cancelled
    called_b = {p for p, n in numbers_of("b").items() if n.status != "pending"}
    nums = {**numbers_of("a"), **numbers_of("b")}
    atts = {**attempts_by_phone("a"), **attempts_by_phone("b")}
    called = list(a_phones) + sorted(called_b)
    assert {p: nums[p].status for p in called} == {p: "done" for p in called}
    assert {p: [x.outcome for x in atts[p]] for p in called} == {p: ["answered"] for p in called}
    assert Attempt.select().where(Attempt.status != "ended").count() == 0
    assert all(a.outcome == "answered" for a in Attempt.select().where(Attempt.id.in_(b_up)))
    assert mon.number_peak == 1 and mon.drops == 0
    assert dict(mon.dialed) == {p[1:]: 1 for p in called}
    cause = campaigns.history(Campaign.get(Campaign.name == "b"), limit=1)[0].cause
    peaks = {phase: dict(mon.peaks[phase]) for phase in ("before", "after", "invalid")}
    figures.update(peaks=peaks, calls=mon.started, a_pending_at_invalid=pending_a,
                   b_calls_up_at_removal=len(b_up), b_called=len(called_b),
                   b_left_pending=len(b_phones) - len(called_b))
    print("FIGURES reload", figures)
    assert peaks["before"]["a"] <= 2 and "b" not in peaks["before"]
    assert 2 < peaks["after"]["a"] <= 5 and 1 <= peaks["after"]["b"] <= 2
    assert peaks["invalid"]["a"] <= 5 and peaks["invalid"].get("b", 0) <= 2
    assert pending_a >= 8  # enough left that an applied cap of 8 would have shown
    assert cause == "removed from the config" and b_up and len(called_b) < len(b_phones)
