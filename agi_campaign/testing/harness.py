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


def server_entry(sandbox, agi_url, limits=None):
    """A server's config entry; `limits`: its max_channels and max_cps keys (a dict)."""
    host, port, user, secret = sandbox.ami_credentials
    return {"ami": {"host": host, "port": port, "username": user, "secret": secret},
            "dial_template": DIAL_TEMPLATE, "agi_url": agi_url, **(limits or {})}


def write_config(path, servers, fastagi_port, campaigns, db_url=None, dnc_lists=("blocked",),
                 tick_ms=100, stop_deadline_s=30, agi_port=None, http=None, server_limits=None,
                 **service):
    """Write a config for `servers` ({name: AsteriskSandbox}) and `campaigns` ({name: dict});
    `service` adds keys of the service section (stuck_after_s, instance). Asterisk connects to
    FastAGI on `agi_port` (default: `fastagi_port`; another one to put a proxy in between).
    `http`: the http: section (a dict; None leaves the HTTP server off). `server_limits`:
    {server name: {"max_channels": N, "max_cps": X}} (either key optional)."""
    agi_url = "agi://127.0.0.1:%d" % (agi_port or fastagi_port)
    limits = server_limits or {}
    data = {
        "database": {"url": db_url or "sqlite:///agi-campaign.db"},
        "fastagi": {"host": "127.0.0.1", "port": fastagi_port},
        "service": dict({"tick_ms": tick_ms, "stop_deadline_s": stop_deadline_s}, **service),
        **({"http": http} if http is not None else {}),
        "servers": {name: server_entry(sb, agi_url, limits.get(name))
                    for name, sb in servers.items()},
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

    Timelines, in Asterisk's own time (the events' `Timestamp`, epoch seconds: the sandbox sets
    timestampevents; the monitor's wall clock when an event has none or a leg is only seen by a
    resync): `legs`, (time, number digits, +1 up / -1 down) per callee leg, so peaks can be
    grouped by any set of numbers; `originated`, (time, instance, attempt id) per channel the
    dialer originated.

    If Asterisk drops the monitor's AMI session (`drops`), the events of that gap are lost: on
    reconnection, before any event of the new session counts, the monitor asks Asterisk which
    channels are up (CoreShowChannels, retried for up to `resync_for_s`) and corrects its live
    set (a leg whose Hangup was missed is gone, one whose Newchannel was missed is counted), so
    no stale leg inflates a peak. The new session's events may reach the monitor before the
    client says it is connected (its reader starts before the login completes), hence the
    resync from the first of them too. Corrections are stamped with the time of the last event
    seen before the gap (when they happened is unknown; so the timelines keep Asterisk's
    clock, not the time a loaded test process got round to the resync). A leg that began and
    ended inside the gap stays uncounted. `blind` is true while a drop has not been
    resynchronised (still disconnected, or every resync try failed): its counts are not to be
    trusted, and checks must fail saying so ("monitor blind") rather than pass on them.
    """

    def __init__(self, sandbox, marker="@acamp-test-callees-", resync_for_s=10.0):
        host, port, user, secret = sandbox.monitor_credentials
        self.marker = marker
        self.resync_for_s = resync_for_s
        self.live = set()
        self.peak = 0
        self.started = 0
        self.dialed = collections.Counter()
        self.start_times = []
        self.legs = []  # (time, number digits, +1 / -1)
        self.originated = []  # (time, instance, attempt id)
        self.number_live = collections.Counter()
        self.number_peak = 0
        self.attempts = collections.defaultdict(set)  # instance -> attempt ids
        self._lock = threading.Lock()
        self.client = AmiClient(name="monitor-" + sandbox.name, host=host, port=port,
                                username=user, secret=secret)
        self.client.add_listener(self._on_event)
        self.client.add_state_listener(self._on_state)
        self.drops = 0  # times the AMI connection was lost: events were missed, counts are off
        self.resyncs = 0  # drops made good by a resync
        self.gave_up = None  # why a resync failed for good (the monitor is blind), or None
        self.last_at = None  # Asterisk's time of the last event seen
        self._closing = False

    @property
    def blind(self):
        """True when events were missed and not made good (see the class docstring)."""
        with self._lock:
            return self.gave_up is not None or self.drops > self.resyncs

    def _on_state(self, connected):
        if not connected and not self._closing:
            with self._lock:
                self.drops += 1
        elif connected:
            self._resync_if_due()

    def _resync_if_due(self):
        """Resync once after each drop (not again once it gave up: the monitor stays blind)."""
        with self._lock:
            due = self.drops > self.resyncs and self.gave_up is None
        if due:
            self._resync()

    def _resync(self):
        """Correct the live set from the channels Asterisk has now (after a gap in events).
        Retried (the session may drop again, Asterisk may be busy) until `resync_for_s` has
        passed; then the monitor is blind. Runs on the AMI client's dispatcher thread: events
        wait meanwhile, and those older than the snapshot change nothing when they come."""
        deadline = time.monotonic() + self.resync_for_s
        while True:
            left = deadline - time.monotonic()
            try:
                if not self.client.wait_connected(max(left, 0.0)):
                    raise AmiError("not connected")
                events = self.client.collect({"Action": "CoreShowChannels"},
                                             "CoreShowChannelsComplete", max(min(left, 10), 0.5))
                break
            except AmiError as err:
                if time.monotonic() >= deadline:
                    with self._lock:
                        self.gave_up = "resync failed for %.0f s: %s" % (self.resync_for_s, err)
                    return
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
        up = {}
        for ev in events:
            self._note_attempt(ev.get("Uniqueid"), None)
            if self._is_callee_leg(ev.get("Channel", "")):
                up[ev["Channel"]] = ev
        now = self.last_at if self.last_at is not None else time.time()
        with self._lock:
            for channel in self.live - set(up):
                self._ended(channel, now)
            for channel in set(up) - self.live:
                self._began(channel, now)
            self.resyncs = self.drops

    def _is_callee_leg(self, channel):
        return self.marker in channel and channel.endswith(";1")

    def _note_attempt(self, uniqueid, at):
        """Record the attempt of an originated channel; `at`: its Newchannel's time (None when
        a resync found it: no start time then)."""
        m = _CHANNEL.match(uniqueid or "")
        if m:
            with self._lock:
                instance, attempt_id = m.group(1), int(m.group(2))
                if at is not None and attempt_id not in self.attempts[instance]:
                    self.originated.append((at, instance, attempt_id))
                self.attempts[instance].add(attempt_id)

    def _on_event(self, event):
        self._resync_if_due()  # an event of a new session, before its "connected" state
        name, channel = event.get("Event"), event.get("Channel", "")
        try:
            at = float(event["Timestamp"])
        except (KeyError, ValueError):
            at = time.time()
        self.last_at = at
        if name == "Newchannel":
            self._note_attempt(event.get("Uniqueid"), at)
        if not self._is_callee_leg(channel):
            return
        with self._lock:
            if name == "Newchannel" and channel not in self.live:
                self._began(channel, at)
            elif name == "Hangup" and channel in self.live:
                self._ended(channel, at)

    @staticmethod
    def _number(channel):
        return channel.split("@", 1)[0][len("Local/"):]

    def _began(self, channel, at):
        """(under the lock) A callee leg came up at `at`."""
        number = self._number(channel)
        self.live.add(channel)
        self.started += 1
        self.start_times.append(time.monotonic())
        self.legs.append((at, number, 1))
        self.dialed[number] += 1
        self.peak = max(self.peak, len(self.live))
        self.number_live[number] += 1
        self.number_peak = max(self.number_peak, self.number_live[number])

    def _ended(self, channel, at):
        """(under the lock) A callee leg hung up at `at`."""
        number = self._number(channel)
        self.live.discard(channel)
        self.legs.append((at, number, -1))
        self.number_live[number] -= 1

    def peak_of(self, numbers):
        """The most legs up at once among `numbers` (digits), replaying `legs` in the order
        Asterisk sent them."""
        numbers, up, peak = set(numbers), 0, 0
        with self._lock:
            legs = list(self.legs)
        for _, number, step in legs:
            if number in numbers:
                up += step
                peak = max(peak, up)
        return peak

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

