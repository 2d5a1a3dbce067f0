"""The dialer service as a child process, for the integration tests and the benchmarks.

`ServiceProcess` runs `agi-campaign --config PATH run` in its own process (its own GIL, as in
production; it can be SIGKILLed or sent signals) with its output in a log file; `wait_port`
waits until something listens on a local port.
"""
import os
import signal
import socket
import subprocess
import sys
import time

# The folder holding the agi_campaign package: `python -m agi_campaign.cli` run there imports
# this very copy, installed or not.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_port(port, timeout, proc=None):
    """Return once 127.0.0.1:`port` accepts a connection; raise RuntimeError after `timeout`
    seconds or as soon as `proc` (a Popen) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("service exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %s s" % (port, timeout))


class ServiceProcess:
    """`agi-campaign --config PATH run` as a child process, its output appended to `log_path`.

    `start()` returns once the service listens on `port` (its FastAGI port; not waited for when
    None); `starts` counts the starts. `stop()` kills it (SIGKILL) or, with `graceful=True`,
    sends SIGTERM and waits up to `timeout` seconds before killing it.
    """

    def __init__(self, config_path, log_path, port=None):
        self.config_path = str(config_path)
        self.log_path = str(log_path)
        self.port = port
        self.proc = None
        self.starts = 0
        self._log_start = 0

    def start(self, timeout=30):
        self._log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agi_campaign.cli", "--config", self.config_path, "run"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=PACKAGE_PARENT)
        self.starts += 1
        if self.port is not None:
            try:
                wait_port(self.port, timeout, self.proc)
            except RuntimeError as err:
                raise RuntimeError("%s:\n%s" % (err, self.log_tail())) from None
        return self

    @property
    def pid(self):
        return self.proc.pid

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop_twice(self, timeout=20):
        """SIGTERM, then a second SIGTERM once the service has begun stopping. Two signals sent
        back to back can reach Python as one (the interpreter runs a handler once per pending
        signal, and a starved process may see both before running it)."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while "stopping" not in self.log_since_start():
            if time.monotonic() > deadline or not self.running:
                raise RuntimeError("the service did not begin stopping within %s s:\n%s"
                                   % (timeout, self.log_tail()))
            time.sleep(0.05)
        self.signal(signal.SIGTERM)

    def log_since_start(self):
        """What the current run has logged so far."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait(self, timeout):
        """The exit code, once it has exited (subprocess.TimeoutExpired after `timeout` s)."""
        return self.proc.wait(timeout)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, graceful=False, timeout=40):
        if not self.running:
            return
        if graceful:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as fh:
                return b"\n".join(fh.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""
