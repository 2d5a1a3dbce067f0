"""Issue 11 acceptance, end to end on the real Asterisk 22: calling hours in each callee's own
time zone. One campaign holds numbers of three zones (New York +1 212, Los Angeles +1 415,
Tokyo +81 3); its `callee_hours`, written from the real clock, holds one hour for each zone:
open now in New York, opening at the next minute boundary at least 20 s away in Los Angeles,
opening an hour later in Tokyo. Calls are counted from Asterisk's own events
(harness.ChannelMonitor): New York is dialed at once, Los Angeles only from its opening, Tokyo
not at all (it waits, pending, with no attempt used, due at its opening).

Times: a leg's Newchannel event is received after the leg starts, and the leg starts after
its attempt is written (claim before originate), so "attempt written at or after the opening"
proves "leg started at or after the opening"; the monitor's receipt time is checked too.
The sandbox callees answer by the last four digits of the number (1 = answer, then hold 1 s),
whatever the country, so numbers of any country reach an answering callee."""
import datetime as dt
import threading
import time
from zoneinfo import ZoneInfo

import pytest

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock, from_db
from agi_campaign.models import Attempt
from agi_campaign.status import status
from agi_campaign.testing import harness

from tests.integration.support import attempts_by_phone, campaign, load, numbers_of, wait_for

pytestmark = pytest.mark.asterisk

UTC = dt.timezone.utc
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EAST = ["+1212555%04d" % (1100 + i) for i in range(3)]        # America/New_York
WEST = ["+1415555%04d" % (1110 + i) for i in range(3)]        # America/Los_Angeles
TOKYO = ["+8131234%04d" % (1120 + i) for i in range(3)]       # Asia/Tokyo
ZONES = {"America/New_York": EAST, "America/Los_Angeles": WEST, "Asia/Tokyo": TOKYO}
HOUR = dt.timedelta(hours=1)


def slot_groups(opens, zone):
    """Week-time groups for one hour from `opens` (aware) in `zone`'s local time, split at
    local midnight."""
    local = opens.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    end = local + HOUR
    groups = []
    while local < end:
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time())
        stop = min(end, midnight)
        groups.append("%s %s-%s" % (DAYS[local.weekday()], local.strftime("%H:%M"),
                                    "24:00" if stop == midnight else stop.strftime("%H:%M")))
        local = stop
    return groups


class LegTimes:
    """Wall-clock receipt time of each callee leg's Newchannel, from the monitor's AMI."""

    def __init__(self, mon):
        self.first = {}
        self._lock = threading.Lock()
        mon.client.add_listener(self._on_event)

    def _on_event(self, event):
        channel = event.get("Channel", "")
        if event.get("Event") == "Newchannel" and "@acamp-test-callees-" in channel \
                and channel.endswith(";1"):
            number = "+" + channel.split("@", 1)[0][len("Local/"):]
            with self._lock:
                self.first.setdefault(number, dt.datetime.now(UTC))


def test_callee_hours_each_number_dialed_only_inside_its_own_window(dialer, asterisk, tmp_path):
    now = dt.datetime.now(UTC)
    west_opens = (now + dt.timedelta(seconds=20 + 59)).replace(second=0, microsecond=0)
    east_opens = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=10)
    tokyo_opens = west_opens + HOUR
    opens = {"America/New_York": east_opens, "America/Los_Angeles": west_opens,
             "Asia/Tokyo": tokyo_opens}
    hours = "; ".join(g for zone, at in opens.items() for g in slot_groups(at, zone))
    print("callee_hours", hours, "west opens in", (west_opens - now).total_seconds(), "s")

    with harness.ChannelMonitor(asterisk) as mon:
        legs = LegTimes(mon)
        _, config = dialer.start({"hours": campaign(
            max_channels=10, delay_ms=0, max_attempts=1, callee_hours=hours)},
            {"main": asterisk})
        load("hours", EAST + WEST + TOKYO, tmp_path)
        campaigns.apply_command("hours", "start", SystemClock().now())
        # New York at once; Los Angeles not before its opening
        wait_for(lambda: all(p[1:] in mon.dialed for p in EAST), 15)
        assert not any(p[1:] in mon.dialed for p in WEST + TOKYO)
        info = status(config, SystemClock().now(), "hours")[0]
        assert info["numbers"]["outside_hours"] == len(WEST + TOKYO), info
        assert info["hours_open_next"] == west_opens.isoformat(), info
        wait_for(lambda: all(p[1:] in mon.dialed for p in WEST), 100)
        wait_for(lambda: not mon.live, 15)
        wait_for(lambda: Attempt.select().where(Attempt.status != "ended").count() == 0, 15)
        time.sleep(2)                     # Tokyo stays closed: a few more ticks, no call

    dialed = {"+" + n: c for n, c in mon.dialed.items()}
    assert dialed == {p: 1 for p in EAST + WEST}, dialed      # Tokyo never, the others once
    atts = attempts_by_phone("hours")
    for zone, phones in ZONES.items():
        for p in phones:
            if zone == "Asia/Tokyo":
                continue
            (att,) = atts[p]
            written = from_db(att.created_at)
            assert opens[zone] <= written < opens[zone] + HOUR, (p, written, opens[zone])
            assert opens[zone] <= legs.first[p] < opens[zone] + HOUR, (p, legs.first[p])
            assert att.outcome == "answered"
    for p in WEST:                       # dialed at its opening, not a tick after a minute
        assert legs.first[p] - west_opens < dt.timedelta(seconds=5), legs.first[p]
    nums = numbers_of("hours")
    for p in TOKYO:                      # waiting for its hours: pending, no attempt used
        assert (nums[p].status, nums[p].attempts) == ("pending", 0)
        assert from_db(nums[p].next_attempt_at) == tokyo_opens
        assert p not in atts
    info = status(config, SystemClock().now(), "hours")[0]
    assert info["numbers"]["outside_hours"] == len(TOKYO)
    assert info["hours_open_next"] == tokyo_opens.isoformat()
    assert info["reason"].startswith("3 number(s) outside their calling hours"), info
