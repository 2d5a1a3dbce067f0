"""Shared pieces of the benchmarks: result rows, the machine description, the service's memory
figures, a plain FastAGI server (the baseline), and fast table builders. The service runs as a
child process through agi_campaign.testing.process.ServiceProcess (shared with the tests).

Every benchmark module has `run(workdir) -> list[dict]` (rows made by `row()`) and can be run
alone: `python bench/<module>.py` prints its rows as JSON.
"""
import json
import os
import platform
import signal
import socketserver
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BENCH_SANDBOX = "bench"


def row(bench, metric, ours, baseline, unit, goal, met, ratio=None, note=""):
    """One line of the results table; `ratio` defaults to ours / baseline."""
    if ratio is None and ours is not None and baseline:
        ratio = ours / baseline
    return {"bench": bench, "metric": metric, "ours": ours, "baseline": baseline, "unit": unit,
            "ratio": ratio, "goal": goal, "met": met, "note": note}


def main_for(run):
    """`python bench/<module>.py [WORKDIR]`: run one benchmark, print its rows as JSON."""
    import tempfile
    workdir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="acamp-bench-")
    os.makedirs(workdir, exist_ok=True)
    rows = run(workdir)
    print("BENCH-ROWS " + json.dumps(rows), flush=True)


# ---- the machine ---------------------------------------------------------------------------

def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    ram = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
                    break
    except OSError:
        pass
    import sqlite3
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram": ram,
        "os": _os_name(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(),
        "asterisk": _asterisk_version(),
    }


def _os_name():
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _asterisk_version():
    from agi_campaign.testing.sandbox import chroot_path
    try:
        out = subprocess.run(["chroot", str(chroot_path()), "/usr/sbin/asterisk", "-V"],
                             capture_output=True, text=True, timeout=20, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _postgres_version():
    try:
        import psycopg2
        conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                return cur.fetchone()[0]
        finally:
            conn.close()
    except Exception:  # boundary: a missing server is reported, not fatal  # noqa: BLE001
        return "not reachable"


PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


# ---- the service's memory (the service itself runs as agi_campaign.testing.process.ServiceProcess)

def status_kb(pid, field):
    """A kB figure of /proc/<pid>/status, e.g. field "VmHWM" (peak resident set size)."""
    with open("/proc/%d/status" % pid, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


# ---- a plain threaded FastAGI server (the baseline of benchmarks 1 and 5) -----------------

class PlainAgiServer:
    """The least a Python FastAGI server can do: a ThreadingTCPServer whose handler reads the
    environment up to the blank line, sends `commands(env)` one by one reading each reply, and
    closes. `on_done(env)` is called after each session."""

    def __init__(self, commands, on_done=None, port=0):
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                env = {}
                while True:
                    line = self.rfile.readline()
                    if not line or line in (b"\n", b"\r\n"):
                        break
                    key, _, value = line.decode("utf-8", "replace").partition(":")
                    env[key] = value.strip()
                if env:
                    for cmd in owner.commands(env):
                        self.wfile.write(cmd.encode() + b"\n")
                        self.wfile.flush()
                        reply = self.rfile.readline()
                        while reply.startswith(b"HANGUP"):
                            reply = self.rfile.readline()
                        if not reply:
                            break
                if owner.on_done:
                    owner.on_done(env)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 512

        self.commands = commands
        self.on_done = on_done
        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,),
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# ---- statistics ----------------------------------------------------------------------------

def percentile(values, pct):
    data = sorted(values)
    if not data:
        return None
    k = (len(data) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


# ---- optional profiling (BENCH_PROFILE=1): py-spy on the service process -------------------

def profile(pid, workdir, name):
    """Start `py-spy record` on `pid` when BENCH_PROFILE is set (collapsed stacks in workdir)."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    out = os.path.join(workdir, "%s.pyspy.txt" % name)
    idle = ["--idle"] if os.environ.get("BENCH_PROFILE") == "idle" else []
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                             "--output", out, "--nonblocking"] + idle,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_stop(proc):
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def fresh_campaign(db_path, name, state):
    """A new, empty SQLite database at `db_path` (old files removed) holding one campaign;
    returns (campaign, now)."""
    from agi_campaign.clock import SystemClock, to_db
    from agi_campaign.models import open_database
    from agi_campaign.models import Campaign

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.unlink(db_path + suffix)
    open_database("sqlite:///" + db_path)
    now = SystemClock().now()
    camp = Campaign.create(name=name, type="on_demand", server="main", state=state,
                           state_changed_at=to_db(now), created_at=to_db(now))
    return camp, now
