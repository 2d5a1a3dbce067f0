"""systemd's notify protocol (sd_notify): READY=1, WATCHDOG=1, STOPPING=1 for `Type=notify`.

A datagram of `KEY=VALUE` lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an
abstract name written with a leading '@'). A few lines of socket code, so no dependency:
the libraries for it wrap these same lines. Without NOTIFY_SOCKET (not under systemd, or
`Type=simple`) every call does nothing; a send that fails is logged once and never raises.

The watchdog: systemd sets WATCHDOG_USEC (and WATCHDOG_PID) from the unit's `WatchdogSec`;
`Watchdog` sends WATCHDOG=1 every half of it, but only while `check()` is true (for the service:
agi_campaign.health.alive: the scheduler running its states job), so a wedged service
stops pinging and systemd restarts it. Once stopping, the watchdog thread ends: systemd stops
the watchdog timer when the unit leaves the running state (TimeoutStopSec bounds the stop).
"""
import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to `address` (None: a no-op notifier)."""

    def __init__(self, address=None):
        self.address = address
        self._failed = False
        self._stopping = False

    @classmethod
    def from_environ(cls, environ=None):
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET") or None
        if path and path.startswith("@"):
            path = "\0" + path[1:]
        return cls(path)

    @property
    def enabled(self):
        return self.address is not None

    def send(self, message):
        """Send `message` (e.g. "READY=1"); True when sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as err:
            if not self._failed:
                self._failed = True
                log.warning("systemd notify to NOTIFY_SOCKET failed: %s (further failures "
                            "not logged)", err)
            return False
        return True

    def ready(self):
        return self.send("READY=1")

    def stopping(self):
        """STOPPING=1, once."""
        if self._stopping:
            return False
        self._stopping = True
        return self.send("STOPPING=1")


def watchdog_interval_s(environ=None, pid=None):
    """Half of WATCHDOG_USEC in seconds, or None when no watchdog is asked of this process
    (unset, not a positive number, or WATCHDOG_PID names another process)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = env.get("WATCHDOG_PID")
    if usec <= 0 or (owner and owner != str(pid if pid is not None else os.getpid())):
        return None
    return usec / 2e6


class Watchdog:
    """A daemon thread sending WATCHDOG=1 every `interval_s` while `check()` is true."""

    def __init__(self, notifier, check, interval_s):
        self._notifier = notifier
        self._check = check
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = None
        self._unwell = False

    def start(self):
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self):
        while not self._stop.wait(self.interval_s):
            try:
                well = self._check()
            except Exception:  # boundary: a failing check is an unwell service
                log.exception("watchdog check failed")
                well = False
            if well:
                if self._unwell:
                    log.info("watchdog: healthy again; pinging systemd")
                self._notifier.send("WATCHDOG=1")
            elif not self._unwell:
                log.error("watchdog: database not answering or scheduler not ticking; not "
                          "pinging systemd (it restarts the service after WatchdogSec)")
            self._unwell = not well


def start_watchdog(notifier, check, environ=None):
    """A started Watchdog when systemd asked for one (and NOTIFY_SOCKET is set), else None."""
    interval = watchdog_interval_s(environ)
    if interval is None or not notifier.enabled:
        return None
    dog = Watchdog(notifier, check, interval)
    dog.start()
    return dog
