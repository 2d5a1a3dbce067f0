"""Fake of a peer, not helpers: an Asterisk Manager Interface server for tests: threaded,
127.0.0.1, ephemeral port.

It parses actions with its own few lines (not agi_campaign.amiproto), so a parser bug cannot
hide itself. Supported actions:
- ``Login`` (accepts ``username``/``secret`` unless ``refuse_login``), ``Logoff``, ``Ping``;
- ``Originate``: ``Success`` "Originate successfully queued", then ``OriginateResponse``;
- ``CoreShowChannels``: one ``CoreShowChannel`` event per name in ``channels`` + Complete;
- ``Echo``: replies after ``DelayMs`` on its own thread (replies arrive out of order) with
  the ``Echo`` header copied;
- ``Flood``: Success, then ``Count`` ``TestEvent`` events in one write;
- ``Fail``: ``Response: Error``; ``Blackhole``: never answered;
- events in ``after_login`` are written right after each successful login's reply;
- any action named in ``fail_next`` (lower case: times left) is answered ``Error`` that many
  times first.
Misbehaviour: ``drop_all()``, ``mute_all()`` (stop answering), ``send_raw(bytes)`` (garbage),
``broadcast(event)``.
"""
import collections
import socket
import threading
import time

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def encode(headers):
    """Dict or list of pairs -> one AMI message (CRLF, blank line)."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    return "".join("%s: %s\r\n" % (k, v) for k, v in pairs).encode() + b"\r\n"


class FakeConnection:
    """One accepted client; a thread reads actions and answers them."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.write_lock = threading.Lock()
        self.logged_in = False
        self.muted = False
        self.thread = threading.Thread(target=self.run, daemon=True, name="fakeami-conn")

    def write(self, data):
        try:
            with self.write_lock:
                self.sock.sendall(data)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self):
        self.write(BANNER)
        buffer = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    block, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.handle(parse_block(block))
        except OSError:
            return
        finally:
            self.sock.close()

    def handle(self, action):
        self.server.record(action)
        if self.muted:
            return
        name = action.get("Action", "").lower()
        if name != "login" and not self.logged_in:
            self.reply(action, "Error", "Permission denied")
            return
        with self.server.lock:
            failing = self.server.fail_next[name] > 0
            if failing:
                self.server.fail_next[name] -= 1
        if failing:
            self.reply(action, "Error", "Failed as the test asked")
            return
        getattr(self, "do_" + name, self.do_unknown)(action)

    def reply(self, action, response, message, extra=()):
        pairs = [("Response", response)]
        if "ActionID" in action:
            pairs.append(("ActionID", action["ActionID"]))
        pairs.append(("Message", message))
        pairs.extend(extra)
        self.write(encode(pairs))

    def event(self, name, action, extra=()):
        pairs = [("Event", name)]
        if "ActionID" in action:
            pairs.append(("ActionID", action["ActionID"]))
        return encode(pairs + list(extra))

    def do_login(self, action):
        server = self.server
        if (server.refuse_login or action.get("Username") != server.username
                or action.get("Secret") != server.secret):
            self.reply(action, "Error", "Authentication failed")
            return
        self.logged_in = True
        self.reply(action, "Success", "Authentication accepted")
        self.write(encode({"Event": "FullyBooted", "Status": "Fully Booted"}))
        for event in list(server.after_login):
            self.write(encode(event))

    def do_logoff(self, action):
        self.reply(action, "Goodbye", "Thanks for all the fish.")
        self.close()

    def do_ping(self, action):
        self.reply(action, "Success", "", [("Ping", "Pong"), ("Timestamp", "1.0")])

    def do_originate(self, action):
        self.reply(action, "Success", "Originate successfully queued")
        self.write(self.event("OriginateResponse", action, [
            ("Response", "Success"), ("Channel", action.get("Channel", "")), ("Reason", "4")]))

    def do_coreshowchannels(self, action):
        self.reply(action, "Success", "Channels will follow", [("EventList", "start")])
        data = b"".join(self.event("CoreShowChannel", action, [("Channel", name)])
                        for name in self.server.channels)
        data += self.event("CoreShowChannelsComplete", action, [
            ("EventList", "Complete"), ("ListItems", str(len(self.server.channels)))])
        self.write(data)

    def do_echo(self, action):
        def later():
            time.sleep(int(action.get("DelayMs", "0")) / 1000)
            self.reply(action, "Success", "echo", [("Echo", action.get("Echo", ""))])
        threading.Thread(target=later, daemon=True).start()

    def do_flood(self, action):
        self.reply(action, "Success", "flood follows")
        self.write(b"".join(encode({"Event": "TestEvent", "Seq": i})
                            for i in range(int(action["Count"]))))

    def do_fail(self, action):
        self.reply(action, "Error", "boom")

    def do_blackhole(self, action):
        pass

    def do_unknown(self, action):
        self.reply(action, "Error", "Invalid/unknown command")


def parse_block(block):
    """Header block -> dict (first value wins; good enough for actions)."""
    action = {}
    for line in block.decode().split("\r\n"):
        key, _, value = line.partition(": ")
        action.setdefault(key, value)
    return action


class FakeAmiServer:
    """Accepts connections on 127.0.0.1:<ephemeral>; use as a context manager."""

    def __init__(self, username="agi-campaign", secret="s3cr3t-Pa55"):
        self.username = username
        self.secret = secret
        self.refuse_login = False
        self.fail_next = collections.Counter()
        self.after_login = []
        self.channels = ["PJSIP/a-0001", "PJSIP/b-0002", "Local/1@x-0003;1"]
        self.actions = []
        self.connections = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.accept_loop, daemon=True, name="fakeami")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.listener.close()
        self.drop_all()

    def accept_loop(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            conn = FakeConnection(self, sock)
            with self.lock:
                self.connections.append(conn)
            conn.thread.start()

    def record(self, action):
        with self.lock:
            self.actions.append(action)

    def actions_named(self, name):
        with self.lock:
            return [a for a in self.actions if a.get("Action") == name]

    def live(self):
        with self.lock:
            return list(self.connections)

    def drop_all(self):
        for conn in self.live():
            conn.close()

    def mute_all(self):
        for conn in self.live():
            conn.muted = True

    def send_raw(self, data):
        for conn in self.live():
            conn.write(data)

    def broadcast(self, event):
        for conn in self.live():
            if conn.logged_in and not conn.muted:
                conn.write(encode(event))
