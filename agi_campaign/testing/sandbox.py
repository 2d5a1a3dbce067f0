"""A real Asterisk 22 for tests and the demo, run from a Debian sid chroot.

Debian 12 has no Asterisk package, so ``ensure_chroot()`` debootstraps a minimal Debian sid
with ``asterisk`` and ``asterisk-core-sounds-en-gsm`` once (needs root; about 40 s, 500 MB) into
``chroot_path()``. ``AsteriskSandbox`` then runs one Asterisk inside it with its own
configuration directory ``<chroot>/etc/acamp-<name>/`` (config files plus ``run``, ``log``,
``spool``, ``db``, ``cache``), its own AMI port, and the dialplan ``agi-campaign.conf`` plus the
simulated callees of ``sandbox-test.conf``; several sandboxes run side by side.

Both dialplan files are package data (``agi_campaign/data/agi-campaign.conf``, the product's,
and ``agi_campaign/testing/data/sandbox-test.conf``) so that the sandbox also works from
``pip install .``. ``agi_campaign/data/agi-campaign.conf`` is a byte-identical copy of the
user-facing ``dialplan/agi-campaign.conf``; a test fails when they differ. (A symlink would
survive neither every sdist/wheel path nor a Windows checkout, and reading ``dialplan/`` at run
time works only from a checkout.)

Nothing from the host is mounted into the chroot: the chroot shares the host's network, which is
all the sandbox needs (AMI on 127.0.0.1:<port>, FastAGI back to the host).
"""

from __future__ import annotations

import fcntl
import importlib.resources
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from agi_campaign.ami import AmiClient
from agi_campaign.errors import AmiAuthError, StartupError

log = logging.getLogger(__name__)

CHROOT_ENV = "AGI_CAMPAIGN_CHROOT"
READY_MARKER = ".agi-campaign-ready"
DIAL_TEMPLATE = "Local/{number}@acamp-test-callees"
QUEUE = "acamp-sales"
CONFERENCE = "acamp-room"
AMI_USERNAME = "acamp"
# The dialer's event filter, as dialplan/README.md recommends: OriginateResponse, and the Hangup
# events of its own channels (their Uniqueid is the ChannelId it gave,
# acamp-<instance>-<attempt>-<token>; not a Local callee's ";2" half, nor Asterisk's own
# <systemname>-<time>.<n>, which starts with acamp- in the sandbox).
AMI_EVENT_FILTERS = ("eventfilter = Event: OriginateResponse",
                     "eventfilter(name(Hangup),header(Uniqueid),method(regex)) = "
                     "^acamp-[a-z0-9]+-[0-9]+-[0-9a-f]+$")
# A second AMI user, unfiltered and read-only, for tests and benchmarks that watch Asterisk
# (harness.ChannelMonitor): it sees every channel event the dialer's user does not.
MONITOR_USERNAME = "acampmon"
MONITOR_READ = "call,agent,agi,user,dialplan"
# The classes agi-campaign needs (dialplan/README.md): OriginateResponse events are "call";
# Originate needs "originate", Hangup/Redirect "call", CoreShowChannels "reporting".
AMI_READ = "call"
AMI_WRITE = "originate,call,reporting"

# Loaded with autoload=no, in this order: res_speech before res_agi (res_agi needs its symbols).
# Local channels are part of the core in Asterisk 22 (no chan_local.so).
MODULES = (
    "res_speech", "res_agi", "res_timing_timerfd", "res_musiconhold",
    "pbx_config",
    "app_dial", "app_playback", "app_stack", "app_exec", "app_verbose", "app_userevent",
    "app_queue", "app_confbridge", "app_echo", "app_amd", "app_waitforsilence",
    "app_senddtmf",  # the opt-out callee (d4 = 6) presses a key with SendDTMF
    "func_channel", "func_callerid", "func_logic", "func_strings", "func_hangupcause",
    "func_dialplan", "func_global", "func_db",
    "bridge_simple", "bridge_softmix", "bridge_holding", "bridge_builtin_features",
    "codec_gsm", "codec_ulaw", "codec_alaw", "codec_a_mu", "codec_resample",
    "format_gsm", "format_wav", "format_wav_gsm", "format_pcm", "format_sln",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class SandboxError(StartupError):
    """The Asterisk sandbox cannot be built, started or driven."""


class AmiCredentials(NamedTuple):
    """Where and how to log in to a sandbox's AMI."""

    host: str
    port: int
    username: str
    secret: str

    def __repr__(self) -> str:
        return (f"AmiCredentials(host={self.host!r}, port={self.port}, "
                f"username={self.username!r}, secret='***')")


def chroot_path() -> Path:
    """The chroot directory: $AGI_CAMPAIGN_CHROOT or ~/.cache/agi-campaign/asterisk-sid."""
    env = os.environ.get(CHROOT_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "agi-campaign" / "asterisk-sid"


def chroot_ready(root: Path | None = None) -> bool:
    """True when the chroot has been built completely (Asterisk binary and marker file)."""
    root = root or chroot_path()
    return (root / "usr/sbin/asterisk").is_file() and (root / READY_MARKER).is_file()


def ensure_chroot(root: Path | None = None, build: bool = True) -> Path:
    """Return the ready chroot, building it first if needed (`make asterisk` runs this).

    Building needs root, network access and debootstrap (installed with apt-get if missing).
    With build=False a missing chroot is a SandboxError naming the fix.
    """
    root = root or chroot_path()
    if chroot_ready(root):
        return root
    if not build:
        raise SandboxError(
            f"{root}: no Asterisk chroot; build it with `make asterisk` "
            f"(python -m agi_campaign.testing.sandbox build), as root; {CHROOT_ENV} overrides the path")
    if os.geteuid() != 0:
        raise SandboxError(f"{root}: building the Asterisk chroot needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        _run(["apt-get", "update", "-qq"], "apt-get update")
        _run(["apt-get", "install", "-y", "-qq", "debootstrap"], "apt-get install debootstrap",
             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    build_log = root.with_name(root.name + ".log")
    log.info("building Asterisk chroot path=%s log=%s", root, build_log)
    with open(build_log, "wb") as out:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase",
             "--include=asterisk,asterisk-core-sounds-en-gsm", "sid", str(root)],
            stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SandboxError(f"{root}: debootstrap failed (exit {proc.returncode}), see {build_log}")
    (root / READY_MARKER).touch()
    return root


def _run(cmd: list[str], what: str, env: dict | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SandboxError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's choice for an ephemeral bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def data_text(filename: str, package: str = "agi_campaign") -> str:
    """A file shipped in `package`'s data/ folder (the dialplans)."""
    return (importlib.resources.files(package) / "data" / filename).read_text("utf-8")


def render_config(name: str, ami_port: int, secret: str, moddir: str, verbose: int = 3,
                  ami_read: str = AMI_READ, ami_write: str = AMI_WRITE,
                  monitor_secret: str | None = None,
                  ami_event_filters: tuple[str, ...] = AMI_EVENT_FILTERS) -> dict[str, str]:
    """The sandbox's configuration files, {filename: text}; paths are as seen inside the chroot.

    Pure (no I/O besides reading package data) and long only because it is the config text.
    """
    etc = f"/etc/acamp-{name}"
    loads = "".join(f"load => {mod}.so\n" for mod in MODULES)
    return {
        "asterisk.conf": (
            "[directories]\n"
            f"astetcdir => {etc}\nastmoddir => {moddir}\n"
            "astvarlibdir => /var/lib/asterisk\nastkeydir => /var/lib/asterisk\n"
            "astdatadir => /usr/share/asterisk\nastagidir => /usr/share/asterisk/agi-bin\n"
            "astsbindir => /usr/sbin\n"
            f"astdbdir => {etc}/db\nastspooldir => {etc}/spool\nastrundir => {etc}/run\n"
            f"astlogdir => {etc}/log\nastcachedir => {etc}/cache\n"
            "[options]\n"
            f"verbose = {verbose}\nsystemname = acamp-{name}\nhideconnect = yes\n"
            "defaultlanguage = en\n"),
        "modules.conf": "[modules]\nautoload = no\n" + loads,
        "logger.conf": (
            "[general]\ndateformat = %F %T.%3q\n"
            "[logfiles]\nconsole => notice,warning,error\n"
            "full.log => notice,warning,error,verbose\n"),
        "manager.conf": (
            "[general]\nenabled = yes\nwebenabled = no\n"
            f"port = {ami_port}\nbindaddr = 127.0.0.1\ndisplayconnects = no\n"
            # Every event carries `Timestamp:` (Asterisk's clock): tests measure the time
            # between calls on it, not on when a loaded machine delivered the events.
            "timestampevents = yes\n"
            f"[{AMI_USERNAME}]\nsecret = {secret}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
            f"read = {ami_read}\nwrite = {ami_write}\n"
            # The dialer needs only OriginateResponse and its channels' Hangup from the event
            # stream (list actions' replies are not filtered): ~19 events a call fewer to read.
            + "".join(line + "\n" for line in ami_event_filters) +
            "writetimeout = 5000\n"  # as README recommends: a busy dialer is not dropped
            # The monitor reads every call event; on a loaded machine it may fall behind for a
            # moment, and past writetimeout (100 ms by default) Asterisk drops the session and
            # with it events the tests count calls by. `reporting`: CoreShowChannels, to
            # resynchronise after a drop (harness.ChannelMonitor).
            + (f"[{MONITOR_USERNAME}]\nsecret = {monitor_secret}\n"
               "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
               f"read = {MONITOR_READ}\nwrite = reporting\nwritetimeout = 10000\n"
               if monitor_secret else "")),
        "cdr.conf": "[general]\nenable = no\n",
        # Present only to keep "Unable to load config file" noise out of the log.
        **{f: "[general]\n" for f in ("cel.conf", "features.conf", "acl.conf", "udptl.conf",
                                      "ccss.conf")},
        "stasis.conf": "[threadpool]\n",
        # app_amd does not load without amd.conf; these are Asterisk's shipped defaults.
        "amd.conf": (
            "[general]\ninitial_silence = 2500\ngreeting = 1500\n"
            "after_greeting_silence = 800\ntotal_analysis_time = 5000\n"
            "min_word_length = 100\nbetween_words_silence = 50\n"
            "maximum_number_of_words = 2\nmaximum_word_length = 5000\n"
            "silence_threshold = 256\n"),
        "extensions.conf": (
            "[general]\nstatic = yes\nwriteprotect = yes\n"
            "#include agi-campaign.conf\n#include sandbox-test.conf\n"
            "#tryinclude extensions-extra.conf\n"),
        "agi-campaign.conf": data_text("agi-campaign.conf"),
        "sandbox-test.conf": data_text("sandbox-test.conf", "agi_campaign.testing"),
        "queues.conf": (
            "[general]\npersistentmembers = no\n"
            f"[{QUEUE}]\nstrategy = ringall\ntimeout = 15\nretry = 1\nwrapuptime = 0\n"
            "ringinuse = yes\nsetinterfacevar = yes\njoinempty = yes\nleavewhenempty = no\n"
            "announce-frequency = 0\nperiodic-announce-frequency = 0\n"
            "announce-holdtime = no\nannounce-position = no\n"
            "member => Local/100@acamp-test-agent/n\n"),
        "confbridge.conf": (
            "[general]\n[default_bridge]\ntype = bridge\n"
            "[default_user]\ntype = user\nquiet = yes\n"),
        "musiconhold.conf": (
            "[general]\n[default]\nmode = playlist\n"
            "entry = /usr/share/asterisk/sounds/en/silence/10\n"),
        "indications.conf": (
            "[general]\ncountry = us\n"
            "[us]\ndescription = United States / North America\n"
            "ringcadence = 2000,4000\ndial = 350+440\nbusy = 480+620/500,0/500\n"
            "ring = 440+480/2000,0/4000\ncongestion = 480+620/250,0/250\n"
            "callwaiting = 440/300,0/10000\ndialrecall = !350+440/100,!0/100,!350+440/100,"
            "!0/100,!350+440/100,!0/100,350+440\nrecord = 1400/500,0/15000\n"
            "info = !950/330,!1400/330,!1800/330,0\nstutter = !350+440/100,!0/100,!350+440/100,"
            "!0/100,!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,"
            "!0/100,350+440\n"),
    }


def _accepts(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class AsteriskSandbox:
    """One Asterisk 22 running in the chroot with its own configuration, ports and files.

    ``ami_port=None`` picks a free port. ``agi_url`` is where this Asterisk reaches the FastAGI
    server (what a ServerConfig's agi_url should say). ``extra_conf`` maps file names to text
    written after the defaults (replacing a default file of that name); dialplan added as
    ``extensions-extra.conf`` is included by extensions.conf. ``verbose`` is the Asterisk
    verbosity in ``log/full.log`` (use 0 for benchmarks). ``ami_event_filters``: the dialer AMI
    user's ``eventfilter`` lines (the default is what dialplan/README.md recommends). Use as a
    context manager or call start()/stop().
    """

    def __init__(self, name: str, ami_port: int | None = None,
                 agi_url: str = "agi://127.0.0.1:4573", extra_conf: dict[str, str] | None = None,
                 verbose: int = 3, root: Path | None = None,
                 ami_read: str = AMI_READ, ami_write: str = AMI_WRITE,
                 ami_event_filters: tuple[str, ...] = AMI_EVENT_FILTERS):
        if not _NAME_RE.match(name):
            raise SandboxError(f"sandbox name {name!r} must match {_NAME_RE.pattern}")
        self.name = name
        self.root = Path(root) if root else chroot_path()
        self.ami_port = ami_port or free_port()
        self.agi_url = agi_url
        self.dial_template = DIAL_TEMPLATE
        self.extra_conf = dict(extra_conf or {})
        self.verbose = verbose
        self.ami_read, self.ami_write = ami_read, ami_write
        self.ami_event_filters = ami_event_filters
        self.secret = secrets.token_hex(16)
        self.monitor_secret = secrets.token_hex(16)
        self.conf_dir = f"/etc/acamp-{name}"                  # inside the chroot
        self.etc_dir = self.root / "etc" / f"acamp-{name}"   # the same, seen from the host
        self.log_path = self.etc_dir / "log" / "full.log"
        self.console_path = self.etc_dir / "log" / "console.log"
        self.started_s: float | None = None                   # seconds the last start() took
        self._proc: subprocess.Popen | None = None
        self._lock_fd: int | None = None
        self._console = None

    def __repr__(self) -> str:
        return f"AsteriskSandbox(name={self.name!r}, ami_port={self.ami_port}, running={self.running})"

    def __enter__(self) -> AsteriskSandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def ami_credentials(self) -> AmiCredentials:
        return AmiCredentials("127.0.0.1", self.ami_port, AMI_USERNAME, self.secret)

    @property
    def monitor_credentials(self) -> AmiCredentials:
        """The unfiltered, read-only AMI user for observers (not for the dialer)."""
        return AmiCredentials("127.0.0.1", self.ami_port, MONITOR_USERNAME, self.monitor_secret)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 30) -> None:
        """Write a fresh configuration, start Asterisk, wait for an AMI login and the full boot."""
        if self.running:
            raise SandboxError(f"sandbox {self.name}: already running (pid {self.pid})")
        ensure_chroot(self.root, build=False)
        began = time.monotonic()
        self._lock()
        try:
            self._write_config()
            self._console = open(self.console_path, "ab")
            self._proc = subprocess.Popen(
                ["chroot", str(self.root), "/usr/sbin/asterisk", "-C",
                 f"{self.conf_dir}/asterisk.conf", "-f", "-n"],
                stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT,
                start_new_session=True)
            self._wait_ami(began + timeout)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - began
        log.info("asterisk sandbox started name=%s pid=%s ami_port=%s in %.2fs",
                 self.name, self.pid, self.ami_port, self.started_s)

    def stop(self, timeout: float = 10) -> None:
        """``core stop now``; SIGTERM then SIGKILL if Asterisk has not exited after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                self._cli_run("core stop now", timeout=timeout)
            except (SandboxError, subprocess.TimeoutExpired):
                pass
            for sig_fn in (None, proc.terminate, proc.kill):
                if sig_fn is not None:
                    sig_fn()
                try:
                    proc.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._console is not None:
            self._console.close()
            self._console = None
        self._unlock()

    def restart(self, timeout: float = 30) -> None:
        """Stop and start again on the same AMI port (channels are lost; the config is rewritten)."""
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        """Stop, then delete the instance directory (configuration and logs)."""
        self.stop()
        shutil.rmtree(self.etc_dir, ignore_errors=True)
        self.etc_dir.with_name(self.etc_dir.name + ".lock").unlink(missing_ok=True)

    def cli(self, command: str, timeout: float = 10) -> str:
        """Run one CLI command (``asterisk -rx``) and return its output."""
        if not self.running:
            raise SandboxError(f"sandbox {self.name}: not running; cannot run CLI {command!r}")
        return self._cli_run(command, timeout)

    def count_channels(self, pattern: str | None = None) -> int:
        """Channels up now; with ``pattern``, only those whose name matches it (re.search)."""
        out = self.cli("core show channels concise")
        names = [line.split("!", 1)[0] for line in out.splitlines() if "!" in line]
        if pattern is not None:
            names = [n for n in names if re.search(pattern, n)]
        return len(names)

    def wait_channels(self, count: int = 0, pattern: str | None = None,
                      timeout: float = 10) -> bool:
        """Wait until count_channels(pattern) <= count; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.count_channels(pattern) <= count:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the Asterisk log (for error messages)."""
        for path in (self.log_path, self.console_path):
            try:
                text = path.read_text("utf-8", "replace")
            except OSError:
                continue
            if text.strip():
                return "\n".join(text.splitlines()[-lines:])
        return "(no log)"

    # -- internals ---------------------------------------------------------------------------

    def _cli_run(self, command: str, timeout: float) -> str:
        proc = subprocess.run(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-C",
             f"{self.conf_dir}/asterisk.conf", "-rx", command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise SandboxError(f"sandbox {self.name}: CLI {command!r} failed "
                               f"(exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def _moddir(self) -> str:
        found = sorted(self.root.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise SandboxError(f"{self.root}: no usr/lib/*/asterisk/modules; rebuild the chroot")
        moddir = found[0]
        missing = [m for m in MODULES if not (moddir / f"{m}.so").is_file()]
        if missing:
            raise SandboxError(f"{moddir}: modules missing: {', '.join(missing)}")
        return "/" + str(moddir.relative_to(self.root))

    def _write_config(self) -> None:
        shutil.rmtree(self.etc_dir, ignore_errors=True)
        for sub in ("run", "log", "spool", "db", "cache"):
            (self.etc_dir / sub).mkdir(parents=True)
        files = render_config(self.name, self.ami_port, self.secret, self._moddir(),
                              self.verbose, self.ami_read, self.ami_write, self.monitor_secret,
                              self.ami_event_filters)
        files.update(self.extra_conf)
        for filename, text in files.items():
            path = self.etc_dir / filename
            path.write_text(text, "utf-8")
            if filename == "manager.conf":
                path.chmod(0o600)

    def _wait_ami(self, deadline: float) -> None:
        """Until the AMI port accepts, then until our AMI user logs in (with the dialer's own
        client), then until Asterisk is fully booted."""
        while not _accepts("127.0.0.1", self.ami_port):
            if self._proc.poll() is not None:
                raise SandboxError(f"sandbox {self.name}: asterisk exited with "
                                   f"{self._proc.returncode} during start:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise SandboxError(f"sandbox {self.name}: AMI on 127.0.0.1:{self.ami_port} not up "
                                   f"in time (port taken?):\n{self.log_tail()}")
            time.sleep(0.05)
        client = AmiClient(name="sandbox-" + self.name, host="127.0.0.1", port=self.ami_port,
                           username=AMI_USERNAME, secret=self.secret, backoff_min_s=0.1,
                           backoff_max_s=0.5)
        client.start()
        try:
            if not client.wait_connected(max(deadline - time.monotonic(), 1.0)):
                if isinstance(client.last_error, AmiAuthError):
                    raise client.last_error
                raise SandboxError(f"sandbox {self.name}: AMI login failed: {client.last_error}")
        finally:
            client.stop()
        # The AMI accepts logins before the PBX is fully booted; an Originate sent then fails
        # ("PBX requires Asterisk to be fully booted"). Wait for the boot too.
        self._cli_run("core waitfullybooted", timeout=max(deadline - time.monotonic(), 1.0))

    def _lock(self) -> None:
        lock_path = self.etc_dir.with_name(self.etc_dir.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SandboxError(f"sandbox {self.name}: {lock_path} is locked: another process runs "
                               "a sandbox of this name; choose another name") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def main(argv: list[str] | None = None) -> int:
    """``python -m agi_campaign.testing.sandbox build|path|run NAME``: build the chroot, or run a sandbox."""
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    cmd = args[0] if args else "build"
    if cmd == "build":
        print(f"asterisk chroot ready: {ensure_chroot()}")
    elif cmd == "path":
        print(chroot_path())
    elif cmd == "run":
        with AsteriskSandbox(args[1] if len(args) > 1 else "demo") as box:
            creds = box.ami_credentials
            print(f"AMI {creds.host}:{creds.port} user={creds.username} secret={creds.secret}\n"
                  f"CLI: chroot {box.root} asterisk -C {box.conf_dir}/asterisk.conf -r\n"
                  "Ctrl-C stops it.", flush=True)
            try:
                while box.running:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    else:
        print("usage: python -m agi_campaign.testing.sandbox [build | path | run [NAME]]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
