"""A dialer wired to sandbox Asterisk instances: shared by the demo, the integration tests and
the benchmarks (one piece of code, so what the demo shows is what the tests check).

`write_config` writes a config.yaml for one or more AsteriskSandbox servers; `callee_number`
builds a number whose callee behaves as asked (see agi_campaign/testing/data/sandbox-test.conf);
`ChannelMonitor` counts, from Asterisk's own AMI events, how many callee legs are up at once.
"""
import collections
import os
import re
import threading
import time

import yaml

from agi_campaign.ami import AmiClient
from agi_campaign.errors import AmiError
from agi_campaign.testing.sandbox import DIAL_TEMPLATE

BEHAVIOUR_DIGIT = {"answer": 1, "busy": 2, "noanswer": 3, "congestion": 4, "unavailable": 5,
                   "optout": 6,  # optout: presses the key hold_s (d3) 1 s after answering
                   "machine": 7, "person": 8}
_CHANNEL = re.compile(r"^acamp-([a-z0-9]+)-(\d+)-[0-9a-f]+$")  # dialer.channel_id, first half
AREAS = ("202", "212", "303", "415", "312", "617", "713", "206")


def callee_number(index, behaviour, hold_s=1):
    """A valid US number (E.164) whose sandbox callee does `behaviour` (hold_s 1..9)."""
    d4 = BEHAVIOUR_DIGIT[behaviour]
    area = AREAS[index // 100 % len(AREAS)]
    exchange = 200 + index // 800
    return "+1%s%03d%d%d%02d" % (area, exchange, d4, hold_s, index % 100)


def server_entry(sandbox, agi_url):
    host, port, user, secret = sandbox.ami_credentials
    return {"ami": {"host": host, "port": port, "username": user, "secret": secret},
            "dial_template": DIAL_TEMPLATE, "agi_url": agi_url}


def write_config(path, servers, fastagi_port, campaigns, db_url=None, dnc_lists=("blocked",),
                 tick_ms=100, stop_deadline_s=30, agi_port=None, http=None, **service):
    """Write a config for `servers` ({name: AsteriskSandbox}) and `campaigns` ({name: dict});
    `service` adds keys of the service section (stuck_after_s, instance). Asterisk connects to
    FastAGI on `agi_port` (default: `fastagi_port`; another one to put a proxy in between).
    `http`: the http: section (a dict; None leaves the HTTP server off)."""
    agi_url = "agi://127.0.0.1:%d" % (agi_port or fastagi_port)
    data = {
        "database": {"url": db_url or "sqlite:///agi-campaign.db"},
        "fastagi": {"host": "127.0.0.1", "port": fastagi_port},
        "service": dict({"tick_ms": tick_ms, "stop_deadline_s": stop_deadline_s}, **service),
        **({"http": http} if http is not None else {}),
        "servers": {name: server_entry(sb, agi_url) for name, sb in servers.items()},
        "dnc_lists": {name: {"description": "demo list"} for name in dnc_lists},
        "campaigns": campaigns,
    }
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    os.chmod(path, 0o600)
    return path


def write_csv(path, phones, extra=None):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("phone,name\n")
        for i, p in enumerate(phones):
            fh.write("%s,%s\n" % (p, (extra or "guest") + str(i)))
    return path


class ChannelMonitor:
    """Counts callee legs up at once on one Asterisk, from Newchannel/Hangup AMI events.

    A callee leg is the channel Dial() creates in [agi-campaign-dialout]: with the sandbox's
    dial template it is named `Local/<number>@acamp-test-callees-XXXXXXXX;1`. `ids_of`
    gives the attempt ids of the originated channels, by deployment instance.

    If Asterisk drops the monitor's AMI session (`drops`), the events of that gap are lost: on
    reconnection the monitor asks Asterisk which channels are up (CoreShowChannels) and
    corrects its live set (a leg whose Hangup was missed is gone, one whose Newchannel was
    missed is counted), so no stale leg inflates a peak. A leg that began and ended inside the
    gap stays uncounted.
    """

    def __init__(self, sandbox, marker="@acamp-test-callees-"):
        host, port, user, secret = sandbox.monitor_credentials
        self.marker = marker
        self.live = set()
        self.peak = 0
        self.started = 0
        self.dialed = collections.Counter()
        self.start_times = []
        self.number_live = collections.Counter()
        self.number_peak = 0
        self.attempts = collections.defaultdict(set)  # instance -> attempt ids
        self._lock = threading.Lock()
        self.client = AmiClient(name="monitor-" + sandbox.name, host=host, port=port,
                                username=user, secret=secret)
        self.client.add_listener(self._on_event)
        self.client.add_state_listener(self._on_state)
        self.drops = 0  # times the AMI connection was lost: events were missed, counts are off
        self._closing = False

    def _on_state(self, connected):
        if not connected and not self._closing:
            with self._lock:
                self.drops += 1
        elif connected and self.drops:
            self._resync()

    def _resync(self):
        """Correct the live set from the channels Asterisk has now (after a gap in events)."""
        try:
            events = self.client.collect({"Action": "CoreShowChannels"},
                                         "CoreShowChannelsComplete", 10)
        except AmiError:
            return
        up = {}
        for ev in events:
            self._note_attempt(ev.get("Uniqueid"))
            if self._is_callee_leg(ev.get("Channel", "")):
                up[ev["Channel"]] = ev
        with self._lock:
            for channel in self.live - set(up):
                self._ended(channel)
            for channel in set(up) - self.live:
                self._began(channel)

    def _is_callee_leg(self, channel):
        return self.marker in channel and channel.endswith(";1")

    def _note_attempt(self, uniqueid):
        m = _CHANNEL.match(uniqueid or "")
        if m:
            with self._lock:
                self.attempts[m.group(1)].add(int(m.group(2)))

    def _on_event(self, event):
        name, channel = event.get("Event"), event.get("Channel", "")
        if name == "Newchannel":
            self._note_attempt(event.get("Uniqueid"))
        if not self._is_callee_leg(channel):
            return
        with self._lock:
            if name == "Newchannel" and channel not in self.live:
                self._began(channel)
            elif name == "Hangup" and channel in self.live:
                self._ended(channel)

    def _began(self, channel):
        """(under the lock) A callee leg came up."""
        number = channel.split("@", 1)[0][len("Local/"):]
        self.live.add(channel)
        self.started += 1
        self.start_times.append(time.monotonic())
        self.dialed[number] += 1
        self.peak = max(self.peak, len(self.live))
        self.number_live[number] += 1
        self.number_peak = max(self.number_peak, self.number_live[number])

    def _ended(self, channel):
        """(under the lock) A callee leg hung up."""
        self.live.discard(channel)
        self.number_live[channel.split("@", 1)[0][len("Local/"):]] -= 1

    def ids_of(self, instance=None):
        """Attempt ids seen for deployment `instance` (every deployment's when None)."""
        with self._lock:
            if instance is not None:
                return set(self.attempts.get(instance, ()))
            return {i for ids in self.attempts.values() for i in ids}

    def __enter__(self):
        self.client.start()
        if not self.client.wait_connected(10):
            raise RuntimeError("channel monitor could not log in to AMI")
        return self

    def __exit__(self, *exc):
        self._closing = True
        self.client.stop()

