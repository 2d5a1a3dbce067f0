"""Test-only tools for fault injection: the service as a real process, and a TCP proxy whose
connections can be cut."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time


class ServiceProcess:
    """`agi-campaign --config PATH run` as a child process (so it can be SIGKILLed)."""

    def __init__(self, config_path, log_path):
        self.config_path = str(config_path)
        self.log_path = str(log_path)
        self.proc = None
        self.starts = 0

    def start(self, ready_port=None, timeout=20):
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agi_campaign.cli", "--config", self.config_path, "run"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        self.starts += 1
        if ready_port is not None:
            wait_port(ready_port, timeout, self.proc)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running:
            self.kill()

    def log_tail(self, n=40):
        with open(self.log_path, "rb") as fh:
            return b"\n".join(fh.read().splitlines()[-n:]).decode("utf-8", "replace")


def wait_port(port, timeout, proc=None):
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
