"""The benchmark's Asterisk: one sandbox with the contexts the raw baselines need, a 20 ms
sound, and helpers to write a service config and load numbers fast.

The sound `/etc/acamp-<name>/tick` is one GSM frame (20 ms) cut from the stock
`ascending-2tone.gsm`: the shortest message a `message` on_connect can play, so that a call
lasts as little as the dialplan allows and the dialing rate is not capped by playback
(200 calls in flight / 20 ms).
"""
import os
import socket
import threading
import time

from agi_campaign.testing import harness
from agi_campaign.testing.sandbox import AsteriskSandbox, free_port

EXTRA_DIALPLAN = """
[bench-raw-connect]
; baseline A: the answered leg of a raw originate runs one minimal FastAGI script
exten => s,1,AGI(${BENCH_AGI}/connect)
 same => n,Hangup()
"""
SOUND_SOURCE = "usr/share/asterisk/sounds/en_US_f_Allison/ascending-2tone.gsm"
GSM_FRAME = 33


def start_sandbox(name="bench"):
    box = AsteriskSandbox(name, verbose=0,
                          extra_conf={"extensions-extra.conf": EXTRA_DIALPLAN})
    box.start()
    with open(box.root / SOUND_SOURCE, "rb") as fh:
        frame = fh.read(GSM_FRAME)
    (box.etc_dir / "tick.gsm").write_bytes(frame)
    return box


def tick_sound(box):
    """The 20 ms sound as Asterisk names it (absolute path inside the chroot, no extension)."""
    return "%s/tick" % box.conf_dir


def campaign(box, **kw):
    out = {"caller_id": '"bench" <12025550100>', "type": "on_demand", "dial_timeout_s": 5,
           "max_attempts": 1, "retry_delay_s": 1, "max_channels": 200, "delay_ms": 0,
           "on_connect": {"type": "message", "sounds": [tick_sound(box)]}}
    out.update(kw)
    return out


def write_service_config(workdir, box, campaigns, tick_ms=200, http=None, db_url=None,
                         call_path=None):
    """A config.yaml for `campaigns` on `box` (`http`: its http: section, None for none;
    `db_url`: None for a SQLite file in `workdir`; `call_path`: the server's, None for the
    default); returns (path, fastagi_port, db_url)."""
    port = free_port()
    db_url = db_url or "sqlite:///%s" % os.path.join(workdir, "agi-campaign.db")
    path = harness.write_config(os.path.join(workdir, "config.yaml"), {"main": box}, port,
                                campaigns, db_url=db_url, tick_ms=tick_ms, stop_deadline_s=20,
                                http=http, server_limits={"main": {"call_path": call_path}}
                                if call_path else None)
    return path, port, db_url


def asterisk_cpu_s(box):
    """CPU seconds (user + system) the sandbox's Asterisk process has used so far."""
    with open("/proc/%d/stat" % box.pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def insert_numbers(campaign_id, phones, now_db, status="pending", batch=50_000):
    """Numbers straight into the table (executemany), bypassing the CSV importer."""
    from agi_campaign.db import database
    sql = ("INSERT INTO number (campaign_id, phone, raw, status, attempts, next_attempt_at, "
           "extra, updated_at) VALUES (?, ?, ?, ?, 0, ?, '{}', ?)")
    if database.obj.param == "%s":
        sql = sql.replace("?", "%s")
    with database.atomic():
        for i in range(0, len(phones), batch):
            rows = [(campaign_id, p, p, status, now_db, now_db) for p in phones[i:i + batch]]
            database.cursor().executemany(sql, rows)


class RawAmi:
    """A plain-socket AMI client logged in as `creds` (an AmiCredentials): sends Originates
    without waiting; hands every message it reads (bytes, without the blank line) to
    `on_message`, on its reader thread."""

    def __init__(self, creds, on_message, events="on"):
        host, port, user, secret = creds
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(None)
        self.on_message = on_message
        self.sock.recv(100)  # banner
        self.sock.sendall(("Action: Login\r\nUsername: %s\r\nSecret: %s\r\nEvents: %s\r\n"
                           "\r\n"
                           % (user, secret, events)).encode())
        self._buf = b""
        self._stop = False
        first = self._read_message()
        if b"Success" not in first:
            raise RuntimeError("raw AMI login refused: %r" % first)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()
        self._n = 0

    def _read_message(self):
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\r\n\r\n", 1)
        return msg

    def _reader(self):
        try:
            while not self._stop:
                *messages, self._buf = self._buf.split(b"\r\n\r\n")  # one pass a read
                for msg in messages:
                    self.on_message(msg)
                chunk = self.sock.recv(262144)
                if not chunk:
                    return
                self._buf += chunk
        except OSError:
            return

    def originate(self, headers, variables=()):
        self._n += 1
        lines = ["Action: Originate", "ActionID: raw-%d" % self._n, "Async: true"]
        lines += ["%s: %s" % kv for kv in headers.items()]
        lines += ["Variable: %s" % v for v in variables]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def close(self):
        self._stop = True
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
            self.sock.close()
        except OSError:
            pass


class ChannelCounter:
    """Counts the channels Asterisk creates (Newchannel events, read with the sandbox's
    unfiltered monitor user, asking only for `call` events) while entered: `count`."""

    def __init__(self, box):
        self.box = box
        self.count = 0

    def _seen(self, msg):
        if msg.startswith(b"Event: Newchannel\r\n"):
            self.count += 1

    def __enter__(self):
        # `call` events only (Newchannel is one): the monitor's other classes (dialplan, agi:
        # a dozen events a call more) would load the machine being measured
        self.ami = RawAmi(self.box.monitor_credentials, self._seen, events="call")
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)  # the last events
        self.ami.close()


class LiveSampler:
    """Samples `len(monitor.live)` (a harness.ChannelMonitor) every `every_s` in a thread while
    entered: `samples` is [(monotonic time, callee legs up)]; `between(first, last)` gives
    the samples taken in that interval."""

    def __init__(self, monitor, every_s=0.02):
        self.monitor, self.every_s = monitor, every_s
        self.samples = []
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.wait(self.every_s):
            self.samples.append((time.monotonic(), len(self.monitor.live)))

    def __enter__(self):
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()

    def between(self, first, last):
        return [n for t, n in self.samples if first <= t <= last]


def wait_idle(box, timeout=30):
    """Wait until Asterisk has no channel up (between runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if box.count_channels() == 0:
            return True
        time.sleep(0.2)
    box.cli("channel request hangup all")
    return box.wait_channels(0, timeout=10)
