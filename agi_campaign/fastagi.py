"""Threaded FastAGI server: moves bytes between Asterisk and a handler(channel); nothing else.

Decisions:
- One thread per connection (reused daemon threads, each taking its own connection from
  accept(): `_Listener`): `EXEC Dial/Queue/ConfBridge` blocks the connection for the whole
  call, and the destination code (agi_campaign.routes) is plain blocking calls. The price is a
  GIL hand-off at every blocking step, about 48 context switches a dialed call (bench/GAPS.md,
  issue 15, third round); an event loop would save most of them at the cost of rewriting that
  code around it.
- The environment must arrive within `env_timeout_s` (a deadline over all env lines, not a
  per-recv timeout, so a peer trickling bytes cannot hold a thread). Afterwards the socket
  has no timeout: a bridged call may last hours.
- Lines are read by our own bounded reader (SocketTransport): a line longer than
  `max_line_bytes` closes the connection instead of growing a buffer.
- `Channel` reuses pyst2's AGI command methods but replaces its transport, which has the
  defects listed in docs/ASTERISK.md (signal handler in __init__, str writes, HANGUP/EOF/511/100
  misparsed, `result=-1` raising, no escaping).

Exceptions the handler sees from a Channel (all from agi_campaign.errors, never pyst2's):
`AgiHangup` (EOF, 511, a write to a closed socket, or a media command that failed because the
channel hung up), `AgiError` (510, 520, EXEC of an unknown application, a media command that
failed on a live channel, an argument containing a line break), `AgiProtocolError` (a reply we
cannot parse; the connection is then unusable).
"""
import errno
import ipaddress
import logging
import math
import socket
import threading
import time

from asterisk import agi as pyst_agi

from agi_campaign import agi
from agi_campaign.errors import AgiError, AgiHangup, AgiProtocolError, StartupError

log = logging.getLogger(__name__)

MAX_INTERIM_LINES = 1000
"""HANGUP/100 lines tolerated before one reply; more means the peer is not Asterisk."""

MEDIA_COMMANDS = frozenset({
    "ANSWER", "STREAM FILE", "CONTROL STREAM FILE", "GET OPTION", "GET DATA", "WAIT FOR DIGIT",
    "SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "SAY PHONETIC", "SAY DATE", "SAY TIME",
    "SAY DATETIME", "RECORD FILE",
})
"""Commands whose `result=-1` means "failed or hung up" (EXEC's -1 is the app's own result)."""


class SocketTransport:
    """Bounded line reader and writer over one connected socket."""

    def __init__(self, sock, max_line_bytes):
        self._sock = sock
        self._max = max_line_bytes
        self._buf = bytearray()
        self._eof = False
        self._timeout = -1

    def readline(self, deadline=None):
        """The next line with its `\\n`; b'' at EOF (a partial last line is dropped).

        `deadline` (time.monotonic()) bounds the whole read: TimeoutError when passed.
        Raises AgiProtocolError for a line longer than max_line_bytes.
        """
        while True:
            end = self._buf.find(b"\n")
            if end >= 0 or len(self._buf) > self._max:
                return self._take_line(end)
            if self._eof:
                return b""
            chunk = self._recv(_remaining(deadline))
            if not chunk:
                self._eof = True
            self._buf += chunk

    def _recv(self, timeout):
        """One recv bounded by `timeout` (None: none). A socket still blocking (no timeout set
        yet) first takes what has already arrived without waiting (MSG_DONTWAIT): the AGI
        environment usually has, and then neither the timeout (a system call to set, another
        to clear) nor the poll() a timeout puts before each recv is needed."""
        if timeout is not None and self._sock.gettimeout() is None:
            try:
                return self._sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        if timeout != self._timeout:  # settimeout is a system call: only when it changes
            self._sock.settimeout(timeout)
            self._timeout = timeout
        return self._sock.recv(65536)

    def _take_line(self, end):
        if end < 0 or end + 1 > self._max:
            raise AgiProtocolError("line longer than max_line_bytes=%d" % self._max)
        line = bytes(self._buf[:end + 1])
        del self._buf[:end + 1]
        return line

    def write(self, data):
        self._sock.sendall(data)

    def no_deadline(self):
        """From now on reads wait without a timeout (a bridged call may last hours)."""
        if self._sock.gettimeout() is not None:
            self._sock.settimeout(None)
        self._timeout = None


def _remaining(deadline):
    """Socket timeout for a read bounded by `deadline`: the time left, rounded up to whole
    seconds so that the timeout (a system call to set) rarely changes between reads."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return float(math.ceil(left))


class _Quoted:
    """An argument pyst2 passed through _quote(): sent as one token even when empty."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class Channel(pyst_agi.AGI):
    """One FastAGI session, speaking pyst2's command vocabulary over our transport.

    AGI.__init__ is deliberately not called: it installs a SIGHUP handler (ValueError outside
    the main thread) and reads the environment itself. Every argument goes out through
    agi.quote(); raw empty arguments are dropped, as pyst2's space-joining made them vanish
    (so `hangup()` sends `HANGUP`, not `HANGUP ""`).
    """

    def __init__(self, env, transport, peer=None):  # pylint: disable=super-init-not-called
        self.env = env
        self.peer = peer
        self._transport = transport
        self._parser = agi.ReplyParser()
        self._broken = None
        self.stdin = self.stdout = self.stderr = None

    def __repr__(self):
        return "<Channel script=%s uniqueid=%s peer=%s>" % (self.script, self.uniqueid, self.peer)

    @property
    def script(self):
        return self.env.script

    @property
    def args(self):
        return self.env.args

    @property
    def uniqueid(self):
        return self.env.uniqueid

    @property
    def hung_up(self):
        """True once Asterisk said HANGUP (or 511, or closed): dead-safe commands still work."""
        return self._parser.hung_up

    @property
    def _got_sighup(self):
        return self._parser.hung_up

    def test_hangup(self):
        """pyst2 compatibility; our execute() does not call it (commands run after HANGUP)."""
        if self.hung_up:
            raise AgiHangup("the channel has hung up")

    def _quote(self, string):
        return _Quoted(str(string))

    # --- transport -------------------------------------------------------------------------

    def send_command(self, command, *args):
        """Write one command line; AgiError (nothing written) if an argument has a line break."""
        tokens = [a.value if isinstance(a, _Quoted) else a for a in args
                  if isinstance(a, _Quoted) or a != ""]
        line = agi.format_command(command.strip(), tokens)
        log.debug("AGI >> %s uniqueid=%s", line.rstrip("\n"), self.uniqueid)
        try:
            self._transport.write(line.encode("utf-8"))
        except OSError as err:
            self._parser.hung_up = True
            raise AgiHangup("cannot send %s: %s" % (command, err)) from err

    def get_result(self, stdin=None):
        """pyst2's reply dict ({'result': (value, data), 'endpos': (n, '')}) of the next reply."""
        return _pyst_result(self.read_reply())

    def read_reply(self):
        """The next final Reply: HANGUP is remembered, 100 skipped, EOF/reset raise AgiHangup."""
        for _ in range(MAX_INTERIM_LINES):
            try:
                raw = self._transport.readline()
            except OSError as err:  # connection reset: Asterisk is gone
                self._parser.hung_up = True
                raise AgiHangup("FastAGI connection lost: %s" % err) from err
            if not raw:
                self._parser.hung_up = True
                raise AgiHangup("Asterisk closed the FastAGI connection")
            line = agi.decode_line(raw)
            log.debug("AGI << %s uniqueid=%s", line, self.uniqueid)
            reply = self._parser.feed(line)
            if reply is not None:
                return reply
        raise AgiProtocolError("no final reply within %d lines" % MAX_INTERIM_LINES)

    def command(self, command, *args):
        """Send `command` and return its Reply; errors name the command."""
        if self._broken:
            raise AgiProtocolError("connection out of step after: %s" % self._broken)
        self.send_command(command, *args)
        try:
            return self.read_reply()
        except AgiHangup:
            raise
        except AgiProtocolError as err:
            self._broken = str(err)
            raise AgiProtocolError("%s: %s" % (command, err)) from err
        except AgiError as err:
            raise AgiError("%s: %s" % (command, err)) from err

    def execute(self, command, *args):
        """pyst2's entry point for every command method.

        `result=-1` raises only for media commands (MEDIA_COMMANDS); EXEC returns it raw so that
        GET VARIABLE can follow. Because -1 is ambiguous ("failed" or "hung up"), a NOOP
        (dead-safe) settles it: Asterisk writes HANGUP before processing the next command.
        """
        reply = self.command(command, *args)
        if reply.result == "-1" and command.strip().upper() in MEDIA_COMMANDS:
            self._raise_failure(command)
        return _pyst_result(reply)

    def _raise_failure(self, command):
        if not self.hung_up:
            self.command("NOOP")
        if self.hung_up:
            raise AgiHangup("the channel hung up during %s" % command)
        raise AgiError("%s failed with result=-1 on a live channel (missing sound file?)"
                       % command)

    # --- pyst2 methods whose behaviour we change ----------------------------------------------

    def appexec(self, application, options=""):
        """EXEC <application> "<options>": the application's raw result (e.g. '0', '-1').

        AgiError if Asterisk has no such application (-2).
        """
        reply = self.command("EXEC", application, options)
        if reply.result == "-2":
            raise AgiError("EXEC %s: Asterisk has no application %r (module not loaded?)"
                           % (application, application))
        return reply.result

    def database_get(self, family, key):
        """pyst2 quotes family/key twice; with real escaping that would send literal quotes."""
        reply = self.command("DATABASE GET", family, key)
        if reply.result != "1":
            raise pyst_agi.AGIDBError(
                "Key not found in database: family=%s, key=%s" % (family, key))
        return reply.data


def _pyst_result(reply):
    result = {"result": (reply.result, reply.data)}
    if reply.endpos is not None:
        result["endpos"] = (str(reply.endpos), "")
    return result


class _Listener:
    """The listening socket and the daemon threads serving it; policy lives in FastAgiServer.

    Each idle thread waits in accept() itself and serves the connection it takes: no accept
    thread handing connections to a pool (bench/, benchmark 5: that hand-off, a poll and a
    thread wake-up a session, was a measurable share of the server's time). A thread that takes
    a connection first makes sure another one waits in accept(), so connections are taken while
    it serves. Threads are reused, never more than the cap + 1 (the one over the cap accepts
    only to refuse: FastAgiServer.admit), and daemons: a session may hold its thread for a whole
    call (EXEC Dial/Queue/ConfBridge), and the process may exit while a conference goes on.
    """

    BACKLOG = 128
    RETRY_S = 0.1  # after accept() fails (out of file descriptors): no busy loop

    def __init__(self, address, owner):
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(self.BACKLOG)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.address = sock.getsockname()[:2]
        self._owner = owner
        self._lock = threading.Lock()
        self._threads = 0
        self._waiting = 0
        self._closed = False

    def start(self):
        self._spawn()

    def close(self):
        """Stop accepting: threads waiting in accept() end, serving ones after their session."""
        with self._lock:
            self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes every accept() (Linux: EINVAL)
        except OSError:
            pass
        self.sock.close()

    def _spawn(self):
        """Start a thread to wait in accept() unless one already does (or the cap is reached)."""
        with self._lock:
            if self._closed or self._waiting or self._threads > self._owner.max_connections:
                return
            self._threads += 1
            self._waiting += 1
            number = self._threads
        threading.Thread(target=self._serve, name="fastagi-%d-%d" % (self.address[1], number),
                         daemon=True).start()

    def _serve(self):
        """Accept, hand the next accept() on, serve; again until the listener closes."""
        try:
            while True:
                try:
                    conn, peer = self.sock.accept()
                except OSError as err:
                    with self._lock:
                        if self._closed:
                            self._waiting -= 1
                            return
                    log.warning("FastAGI accept failed: %s; retrying in %g s", err, self.RETRY_S)
                    time.sleep(self.RETRY_S)
                    continue
                with self._lock:
                    self._waiting -= 1
                self._spawn()
                self._owner.handle_connection(conn, peer)
                with self._lock:
                    if self._closed:
                        return
                    self._waiting += 1
        finally:
            with self._lock:
                self._threads -= 1


class FastAgiServer:
    """FastAGI listener calling `handler(channel)` once per connection, in its own thread."""

    def __init__(self, host, port, handler, allow=(), max_connections=512, max_line_bytes=8192,
                 env_timeout_s=5):
        self.host = host
        self.port = port
        self.handler = handler
        self.allow = _parse_allow(allow)
        self.max_connections = max_connections
        self.max_line_bytes = max_line_bytes
        self.env_timeout_s = env_timeout_s
        self._server = None
        self._lock = threading.Lock()
        self._active = 0
        self.sessions_total = 0  # connections accepted since start (metrics)

    @property
    def address(self):
        """(host, port) actually bound; the real port when 0 (ephemeral) was asked for."""
        if self._server is None:
            return (self.host, self.port)
        return tuple(self._server.address)

    @property
    def active_connections(self):
        with self._lock:
            return self._active

    def start(self):
        """Bind and serve in daemon threads; StartupError naming the fix if binding fails."""
        if self._server is not None:
            return
        try:
            self._server = _Listener((self.host, self.port), self)
        except OSError as err:
            raise StartupError(_bind_message(self.host, self.port, err)) from err
        self._server.start()
        log.info("FastAGI listening on %s:%s", *self.address)

    def stop(self):
        """Stop accepting and close the listener; calls in progress run on to their end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        log.info("FastAGI stopped; %d connection(s) still running", self.active_connections)

    # --- called by _Listener's threads -----------------------------------------------------------

    def handle_connection(self, sock, client_address):
        """Admit, serve and close one accepted connection; never raises."""
        try:
            if not self.admit(client_address):
                return
            self.connection_opened()
            try:
                self.serve_connection(sock, client_address)
            except Exception:  # boundary: one bad connection must not end the thread
                log.exception("FastAGI connection error peer=%s", client_address[0])
            finally:
                self.connection_closed()
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)  # as socketserver did: the peer reads EOF
            except OSError:
                pass
            sock.close()

    def admit(self, client_address):
        """Allowlist, then the connection cap. False closes the socket at once."""
        peer = client_address[0]
        if self.allow and not _allowed(peer, self.allow):
            log.warning("FastAGI refused peer=%s: not in fastagi.allow", peer)
            return False
        if self.active_connections >= self.max_connections:
            log.warning("FastAGI refused peer=%s: %d connections open (fastagi.max_connections)",
                        peer, self.max_connections)
            return False
        return True

    def connection_opened(self):
        with self._lock:
            self._active += 1
            self.sessions_total += 1

    def connection_closed(self):
        with self._lock:
            self._active -= 1

    def serve_connection(self, sock, client_address):
        """Connection thread: read the environment, then run the handler; never raises."""
        peer = client_address[0]
        transport = SocketTransport(sock, self.max_line_bytes)
        try:
            env = self._read_env(transport)
        except AgiProtocolError as err:
            log.warning("FastAGI closed peer=%s: %s", peer, err)
            return
        except OSError as err:
            log.warning("FastAGI closed peer=%s while reading the environment: %s", peer, err)
            return
        transport.no_deadline()
        self._run_handler(Channel(env, transport, peer))

    def _read_env(self, transport):
        deadline = time.monotonic() + self.env_timeout_s
        items = []
        while len(items) <= agi.MAX_ENV_LINES:
            try:
                raw = transport.readline(deadline)
            except TimeoutError:
                raise AgiProtocolError("AGI environment not complete within %s s (%d lines read)"
                                       % (self.env_timeout_s, len(items))) from None
            if not raw:
                raise AgiProtocolError("connection closed after %d AGI environment lines"
                                       % len(items))
            line = agi.decode_line(raw)
            if line == "":
                break
            items.append(agi.env_item(line))  # a line that is not agi_<name>: closes at once
        return agi.env_from_items(items)

    def _run_handler(self, channel):
        ids = (channel.script, channel.uniqueid, channel.peer)
        try:
            self.handler(channel)
        except AgiHangup as err:
            log.debug("FastAGI script=%s uniqueid=%s peer=%s ended by hangup: %s", *ids, err)
        except AgiError as err:
            log.warning("FastAGI script=%s uniqueid=%s peer=%s failed: %s", *ids, err)
        except Exception:  # boundary: one bad call must not stop the server
            log.exception("FastAGI handler crashed script=%s uniqueid=%s peer=%s", *ids)


def _parse_allow(allow):
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError as err:
            raise StartupError("fastagi.allow entry %r is not an IP address or network: %s"
                               % (entry, err)) from err
    return tuple(networks)


def _allowed(peer, networks):
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _bind_message(host, port, err):
    where = "FastAGI cannot listen on %s:%s" % (host, port)
    if err.errno == errno.EADDRINUSE:
        return where + ": address already in use; stop the other process or set fastagi.port"
    if err.errno == errno.EACCES:
        return where + ": permission denied (ports below 1024 need privileges); set fastagi.port"
    if err.errno == errno.EADDRNOTAVAIL:
        return where + ": no such local address; set fastagi.host to an address of this machine"
    return where + ": %s; check fastagi.host and fastagi.port" % (err.strerror or err)
