"""AMI client: one supervised TCP connection, ActionID correlation, event dispatch.

Threads (all daemons, joined with timeouts by :meth:`AmiClient.stop`):
- *supervisor*: connects, logs in, pings every ``ping_interval_s``, expires overdue actions,
  and reconnects with exponential backoff (with jitter) after any drop or refused login;
- *reader* (one per connection): ``recv(64 KiB)`` into :class:`~agi_campaign.amiproto.AmiParser`
  and routes each message: responses and list events to their pending action, other events to
  the dispatch queue. It never runs user code except ``Future`` done-callbacks;
- *dispatcher*: calls event and state listeners in arrival order; a raising listener is logged
  with the event name and dispatch goes on. The queue is unbounded on purpose: blocking the
  reader instead would make Asterisk drop us (manager.conf ``writetimeout``).

Decisions:
- Every pending action belongs to the connection it was written on; when that connection drops,
  its futures fail with :class:`AmiNotConnected`. The action may or may not have reached
  Asterisk: an ``Originate`` that failed this way has an unknown fate, not "not dialed".
- ActionIDs are ``{prefix}-{8 hex of a uuid4 per client}-{counter}``; the counter survives
  reconnects. A caller-supplied ActionID is used as is and must not be pending already.
- ``send`` raises :class:`AmiError` at once for the caller's mistakes (invalid action,
  duplicate ActionID); connection problems arrive through the future: :class:`AmiNotSent`
  (a subclass of AmiNotConnected) when the action provably never left (no connection, or it
  closed before the write), AmiNotConnected when it was written and the connection dropped.
- The backoff resets after each successful login, so a server that accepts and then drops every
  connection is retried at ``backoff_min_s`` pace.
- The secret only exists in the Login action's bytes: never logged, never in an exception or
  ``repr``. Actions are logged by name and ActionID only.
- Future done-callbacks run on the thread that resolves the future (usually the reader): keep
  them short, or the connection stops being read.
"""
import concurrent.futures
import itertools
import logging
import queue
import random
import socket
import threading
import time
import uuid

from agi_campaign.amiproto import BANNER_KEY, AmiParser, encode_action
from agi_campaign.errors import AmiAuthError, AmiError, AmiNotConnected, AmiNotSent, AmiTimeout

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
SWEEP_INTERVAL_S = 0.25
STOP_JOIN_S = 5.0
LOGOFF_TIMEOUT_S = 1.0


class _Pending:
    """An action waiting for its Response (and, for ``collect``, its list events)."""

    def __init__(self, action_name, action_id, deadline, complete_event=None):
        self.action_name = action_name
        self.action_id = action_id
        self.deadline = deadline
        self.complete_event = complete_event
        self.events = []
        self.future = concurrent.futures.Future()


class _Connection:
    """One TCP connection: socket, parser, write lock, pending actions. Owned by the client."""

    def __init__(self, sock, number):
        self.sock = sock
        self.number = number
        self.parser = AmiParser()
        self.write_lock = threading.Lock()
        self.pending = {}
        self.closed = threading.Event()
        self.reader = None

    def shutdown(self):
        """Wake the reader (shutdown interrupts a blocked recv; close alone does not)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class AmiClient:
    """Supervised AMI connection to one Asterisk server (see DESIGN.md "AMI client")."""

    def __init__(self, name, host, port, username, secret, on_event=None,
                 connect_timeout_s=5, action_timeout_s=10, ping_interval_s=10,
                 backoff_min_s=0.5, backoff_max_s=30, action_id_prefix=None):
        if ping_interval_s <= 0 or action_timeout_s <= 0 or backoff_min_s <= 0:
            raise ValueError("ping_interval_s, action_timeout_s and backoff_min_s must be > 0")
        self.name = name
        self.host = host
        self.port = int(port)
        self.username = username
        self._secret = secret
        self.connect_timeout_s = connect_timeout_s
        self.action_timeout_s = action_timeout_s
        self.ping_interval_s = ping_interval_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = max(backoff_max_s, backoff_min_s)
        self.last_error = None
        self.banner = None
        self._id_prefix = "%s-%s" % (action_id_prefix or name, uuid.uuid4().hex[:8])
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._conn = None
        self._connections = itertools.count(1)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._listeners = [on_event] if on_event is not None else []
        self._state_listeners = []
        self._events = queue.Queue()
        self._supervisor = None
        self._dispatcher = None
        self._last_conn = None

    def __repr__(self):
        return ("AmiClient(name=%r, host=%r, port=%r, username=%r, secret='***', connected=%r)"
                % (self.name, self.host, self.port, self.username, self.connected))

    # ----------------------------------------------------------------- lifecycle
    def start(self):
        """Start the supervisor and dispatcher threads; returns at once (see wait_connected)."""
        if self._supervisor is not None:
            raise AmiError("AMI server=%s: start() called twice; create a new AmiClient"
                           % self.name)
        self._dispatcher = self._thread(self._dispatch_loop, "dispatch")
        self._supervisor = self._thread(self._supervise, "supervisor")

    def stop(self):
        """Log off (best effort, bounded), close the connection and join the threads."""
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            try:
                self._submit(conn, self._prepare({"Action": "Logoff"}), LOGOFF_TIMEOUT_S).result(
                    LOGOFF_TIMEOUT_S)
            except (AmiError, concurrent.futures.TimeoutError):
                log.debug("AMI server=%s logoff not acknowledged", self.name)
            self._drop(conn, "client stopped")
        if self._supervisor is not None:
            self._supervisor.join(STOP_JOIN_S)
        last = self._last_conn
        if last is not None and last.reader is not None:
            last.reader.join(STOP_JOIN_S)
        self._events.put(None)
        if self._dispatcher is not None:
            self._dispatcher.join(STOP_JOIN_S)

    @property
    def connected(self):
        """True while logged in."""
        return self._connected.is_set()

    def wait_connected(self, timeout):
        """Wait until logged in; False on timeout (e.g. while the login is refused)."""
        return self._connected.wait(timeout)

    def add_listener(self, fn):
        """Register ``fn(event)`` for every event not claimed by a pending ``collect``."""
        with self._lock:
            self._listeners.append(fn)

    def add_state_listener(self, fn):
        """Register ``fn(connected: bool)``, called from the dispatcher on each transition."""
        with self._lock:
            self._state_listeners.append(fn)

    # ----------------------------------------------------------------- actions
    def send(self, action):
        """Send an action; the future resolves with its Response message.

        ``Response: Error`` fails the future with :class:`AmiError`; a dropped or absent
        connection with :class:`AmiNotConnected`; no reply within ``action_timeout_s`` with
        :class:`AmiTimeout`. ``future.action_id`` is the ActionID sent.
        """
        return self._submit_current(action, self.action_timeout_s)

    def send_many(self, actions):
        """`send` each of `actions` (in order), written to the socket at once: one system call
        for a claim's Originates instead of one each. A list of futures, as `send` returns.
        Raises AmiError, and sends none of them, if one cannot be encoded or repeats a pending
        (or another's) ActionID, as `send` raises for its one action."""
        prepared = [self._prepare(action) for action in actions]
        conn = self._conn
        if conn is None:
            return [self._unsent(p, "not connected") for p in prepared]
        return self._submit_all(conn, prepared, self.action_timeout_s)

    def request(self, action, timeout=None):
        """Send and wait: the Response message, or raise AmiError/AmiTimeout/AmiNotConnected."""
        timeout = self.action_timeout_s if timeout is None else timeout
        return self._wait(self._submit_current(action, timeout), action, timeout)

    def collect(self, action, complete_event, timeout=None):
        """Send a list action and return its events (without the ``complete_event`` one)."""
        timeout = self.action_timeout_s if timeout is None else timeout
        future = self._submit_current(action, timeout, complete_event)
        return self._wait(future, action, timeout)

    def _wait(self, future, action, timeout):
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            self._expire(future, timeout)
        try:  # a reply may have won the race with _expire
            return future.result(1.0)
        except concurrent.futures.TimeoutError:
            raise AmiTimeout(self._timeout_text(action.get("Action"), future.action_id,
                                                timeout)) from None

    def _submit_current(self, action, timeout, complete_event=None):
        """Validate, then submit on the current connection (or fail the future at once)."""
        prepared = self._prepare(action)
        conn = self._conn
        if conn is None:
            return self._unsent(prepared, "not connected")
        return self._submit(conn, prepared, timeout, complete_event)

    def _unsent(self, prepared, why):
        """A future failed at once with AmiNotSent: the action never left."""
        future = concurrent.futures.Future()
        future.action_id = prepared[1]
        future.set_exception(self._not_sent(prepared[0]["Action"], why))
        return future

    def _prepare(self, action):
        """Copy the action, give it an ActionID and encode it: (action, action_id, bytes)."""
        if not isinstance(action, dict) or "Action" not in action:
            encode_action(action)  # raises AmiError naming the problem
        action = dict(action)
        action_id = self._action_id(action)
        return action, action_id, encode_action(action)

    def _submit(self, conn, prepared, timeout, complete_event=None):
        """Register the pending action on ``conn``, then write it (so no reply can be missed).

        The returned future has ``action_id`` and ``ami_conn`` attributes.
        """
        return self._submit_all(conn, [prepared], timeout, complete_event)[0]

    def _submit_all(self, conn, prepared, timeout, complete_event=None):
        """`_submit` for several actions: all registered, then written in one sendall."""
        deadline = time.monotonic() + timeout
        pendings = []
        for action, action_id, _ in prepared:
            pending = _Pending(action["Action"], action_id, deadline, complete_event)
            pending.future.action_id = action_id
            pending.future.ami_conn = conn
            pendings.append(pending)
        with self._lock:
            seen = set()
            for action_id in (p.action_id for p in pendings):
                if action_id in conn.pending or action_id in seen:  # nothing registered yet
                    raise AmiError("AMI server=%s: ActionID %r is already pending; ActionIDs "
                                   "must be unique" % (self.name, action_id))
                seen.add(action_id)
            alive = not conn.closed.is_set()
            if alive:
                for pending in pendings:
                    conn.pending[pending.action_id] = pending
        if not alive:
            for pending in pendings:
                pending.future.set_exception(self._not_sent(pending.action_name,
                                                            "connection closed"))
            return [p.future for p in pendings]
        if log.isEnabledFor(logging.DEBUG):
            for pending in pendings:
                log.debug("AMI server=%s send action=%s actionid=%s", self.name,
                          pending.action_name, pending.action_id)
        # A failed or cut write drops the connection: every pending action of this batch then
        # fails with AmiNotConnected (unconfirmed: a part of the bytes may have arrived).
        self._write(conn, b"".join(data for _, _, data in prepared))
        return [p.future for p in pendings]

    def _action_id(self, action):
        """Use the caller's ActionID (any key case) or add ours."""
        for key in list(action):
            if key.lower() == "actionid":
                value = action.pop(key)
                if not isinstance(value, str) or not value:
                    raise AmiError("AMI ActionID must be a non-empty str, got %r" % (value,))
                action["ActionID"] = value
                return value
        action["ActionID"] = "%s-%d" % (self._id_prefix, next(self._counter))
        return action["ActionID"]

    def _write(self, conn, data):
        try:
            with conn.write_lock:
                conn.sock.sendall(data)
        except OSError as exc:
            self._drop(conn, "write failed: %s" % exc)

    def _expire(self, future, timeout):
        """Fail an overdue action with AmiTimeout (whoever pops the pending resolves it)."""
        conn = getattr(future, "ami_conn", None)
        with self._lock:
            pending = conn.pending.get(future.action_id) if conn else None
            if pending is not None and pending.future is future:
                del conn.pending[future.action_id]
            else:
                pending = None
        if pending is not None:
            future.set_exception(AmiTimeout(self._timeout_text(
                pending.action_name, pending.action_id, timeout)))

    # ----------------------------------------------------------------- supervisor
    def _supervise(self):
        failures = 0
        while not self._stopping.is_set():
            try:
                conn = self._open()
            except AmiAuthError as exc:
                self.last_error = exc
                log.error("%s", exc)
            except (OSError, AmiError) as exc:
                self.last_error = exc
                log.warning("AMI server=%s (%s:%s) connection failed: %s",
                            self.name, self.host, self.port, exc)
            else:
                failures = 0
                self._serve(conn)
            if self._stopping.is_set():
                break
            delay = self._backoff(failures)
            failures += 1
            log.info("AMI server=%s reconnecting in %.2fs", self.name, delay)
            self._stopping.wait(delay)
        conn = self._conn
        if conn is not None:  # stop() raced with a login
            self._drop(conn, "client stopped")

    def _backoff(self, failures):
        """Exponential backoff with jitter, within [backoff_min_s, backoff_max_s]."""
        ceiling = min(self.backoff_max_s, self.backoff_min_s * (2 ** min(failures, 30)))
        return max(self.backoff_min_s, random.uniform(ceiling / 2, ceiling))

    def _open(self):
        """Connect, start the reader, log in; returns the connection once it is current."""
        sock = self._open_socket()
        sock.settimeout(self.ping_interval_s + self.action_timeout_s + 1)
        conn = _Connection(sock, next(self._connections))
        self._last_conn = conn
        conn.reader = self._thread(lambda: self._read_loop(conn), "reader-%d" % conn.number)
        try:
            self._login(conn)
        except BaseException:
            self._drop(conn, "login failed")
            raise
        with self._lock:
            if conn.closed.is_set():
                raise AmiNotConnected("AMI server=%s closed the connection right after login"
                                      % self.name)
            self._conn = conn
            self._connected.set()
        self.last_error = None
        log.info("AMI server=%s connected to %s:%s as %s", self.name, self.host, self.port,
                 self.username)
        self._events.put(("state", True))
        return conn

    def _open_socket(self):
        """A connected TCP socket (tests may override to wrap it)."""
        return socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)

    def _login(self, conn):
        action = {"Action": "Login", "Username": self.username, "Secret": self._secret,
                  "Events": "on"}
        future = self._submit(conn, self._prepare(action), self.action_timeout_s)
        try:
            future.result(self.action_timeout_s)
        except concurrent.futures.TimeoutError:
            raise AmiTimeout(self._timeout_text("Login", future.action_id,
                                                self.action_timeout_s)) from None
        except (AmiNotConnected, AmiTimeout):
            raise
        except AmiError as exc:
            raise AmiAuthError(
                "AMI server=%s (%s:%s) refused the login of user %r (%s); check username and "
                "secret in the servers.%s.ami config and manager.conf"
                % (self.name, self.host, self.port, self.username,
                   getattr(exc, "reply_message", exc),
                   self.name)) from None

    def _serve(self, conn):
        """Ping and expire overdue actions until the connection closes or stop() is called."""
        next_ping = time.monotonic() + self.ping_interval_s
        while not conn.closed.wait(SWEEP_INTERVAL_S):
            if self._stopping.is_set():
                return
            self._sweep(conn)
            if time.monotonic() >= next_ping:
                self._ping(conn)
                next_ping = time.monotonic() + self.ping_interval_s

    def _ping(self, conn):
        future = self._submit(conn, self._prepare({"Action": "Ping"}), self.action_timeout_s)
        try:
            future.result(self.action_timeout_s)
        except concurrent.futures.TimeoutError:
            self._drop(conn, "no reply to Ping within %ss" % self.action_timeout_s)
        except AmiNotConnected:
            pass
        except AmiError as exc:
            self._drop(conn, "Ping failed: %s" % exc)

    def _sweep(self, conn):
        now = time.monotonic()
        with self._lock:
            overdue = [p for p in conn.pending.values() if p.deadline <= now]
            for pending in overdue:
                del conn.pending[pending.action_id]
        for pending in overdue:
            pending.future.set_exception(AmiTimeout(self._timeout_text(
                pending.action_name, pending.action_id, None)))

    # ----------------------------------------------------------------- reader
    def _read_loop(self, conn):
        """Read until EOF, timeout, socket error or protocol error; then drop the connection."""
        reason = "connection closed by the server"
        try:
            while True:
                data = conn.sock.recv(RECV_BYTES)
                if not data:
                    break
                for message in conn.parser.feed(data):
                    self._route(conn, message)
        except socket.timeout:
            reason = "nothing received for %ss" % conn.sock.gettimeout()
        except OSError as exc:
            reason = "socket error: %s" % exc
        except AmiError as exc:
            reason = "protocol error: %s" % exc
        except Exception:  # boundary: a bug here must not leave the connection half-alive
            log.exception("AMI server=%s reader failed", self.name)
            reason = "reader failed"
        finally:
            self._lost(conn, reason)
            conn.sock.close()

    def _route(self, conn, message):
        """Resolve a pending action, collect a list event, or queue an event for listeners."""
        if BANNER_KEY in message:
            self.banner = message[BANNER_KEY]
            return
        action_id = message.get("ActionID")
        if "Event" in message:
            if not self._collect_event(conn, action_id, message):
                self._events.put(("event", message))
        elif "Response" in message:
            self._resolve(conn, action_id, message)
        else:
            log.debug("AMI server=%s ignored a message without Event or Response", self.name)

    def _collect_event(self, conn, action_id, event):
        """Add an event to a pending collect; True if it was claimed."""
        with self._lock:
            pending = conn.pending.get(action_id)
            if pending is None or pending.complete_event is None:
                return False
            if event["Event"] != pending.complete_event:
                pending.events.append(event)
                return True
            del conn.pending[action_id]
        _check_list_items(self.name, pending, event)
        pending.future.set_result(pending.events)
        return True

    def _resolve(self, conn, action_id, response):
        with self._lock:
            pending = conn.pending.get(action_id)
            if pending is None:
                log.debug("AMI server=%s response for unknown actionid=%s", self.name, action_id)
                return
            failed = response.get("Response", "").lower() == "error"
            if failed or pending.complete_event is None:
                del conn.pending[action_id]
        if failed:
            pending.future.set_exception(_action_error(self.name, pending, response))
        elif pending.complete_event is None:
            pending.future.set_result(response)

    def _drop(self, conn, reason):
        """Close a connection from our side; the reader notices and calls _lost."""
        log.debug("AMI server=%s dropping connection %d: %s", self.name, conn.number, reason)
        self._lost(conn, reason)
        conn.shutdown()

    def _lost(self, conn, reason):
        """Fail the connection's pending actions and publish the state change (idempotent)."""
        with self._lock:
            if conn.closed.is_set():
                return
            pending = list(conn.pending.values())
            conn.pending.clear()
            was_current = self._conn is conn
            if was_current:
                self._conn = None
                self._connected.clear()
                # Queued before `closed` is set: the supervisor, woken by it, reconnects, and
                # the next session's events must not reach the listeners ahead of this state.
                self._events.put(("state", False))
            conn.closed.set()
        for item in pending:
            item.future.set_exception(self._not_connected(item.action_name, reason))
        if was_current:
            level = logging.INFO if self._stopping.is_set() else logging.WARNING
            log.log(level, "AMI server=%s disconnected: %s", self.name, reason)

    # ----------------------------------------------------------------- dispatcher
    def _dispatch_loop(self):
        while True:
            item = self._events.get()
            if item is None:
                return
            kind, payload = item
            with self._lock:
                listeners = list(self._listeners if kind == "event" else self._state_listeners)
            for fn in listeners:
                self._call_listener(fn, kind, payload)

    def _call_listener(self, fn, kind, payload):
        try:
            fn(payload)
        except Exception:  # boundary: one bad listener must not stop dispatch
            what = payload.get("Event") if kind == "event" else "connected=%s" % payload
            log.exception("AMI server=%s listener %r failed on %s", self.name, fn, what)

    # ----------------------------------------------------------------- helpers
    def _thread(self, target, role):
        thread = threading.Thread(target=target, name="ami-%s-%s" % (self.name, role),
                                  daemon=True)
        thread.start()
        return thread

    def _not_connected(self, action_name, reason):
        return AmiNotConnected(
            "AMI server=%s (%s:%s): %s; action %s not completed (it may or may not have reached "
            "Asterisk)" % (self.name, self.host, self.port, reason, action_name))

    def _not_sent(self, action_name, reason):
        return AmiNotSent("AMI server=%s (%s:%s): %s; action %s not sent"
                          % (self.name, self.host, self.port, reason, action_name))

    def _timeout_text(self, action_name, action_id, timeout):
        within = " within %ss" % timeout if timeout is not None else " in time"
        return ("AMI server=%s (%s:%s): no reply to %s actionid=%s%s"
                % (self.name, self.host, self.port, action_name, action_id, within))


def _action_error(server, pending, response):
    """AmiError for ``Response: Error``; ``reply_message`` holds Asterisk's Message."""
    message = response.get("Message", "no message")
    exc = AmiError("AMI server=%s: %s actionid=%s failed: %s"
                   % (server, pending.action_name, pending.action_id, message))
    exc.reply_message = message
    exc.response = response
    return exc


def _check_list_items(server, pending, complete):
    """Warn when the Complete event's ListItems disagrees with what was collected."""
    expected = complete.get("ListItems")
    if expected is not None and expected.isdigit() and int(expected) != len(pending.events):
        log.warning("AMI server=%s %s actionid=%s: ListItems=%s but %d events collected",
                    server, pending.action_name, pending.action_id, expected,
                    len(pending.events))
