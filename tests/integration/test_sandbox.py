"""End-to-end checks of the sandbox and of the dialplan contract (docs/DESIGN.md) on Asterisk 22.

Deliberately self-contained: a minimal raw AMI client and a minimal threaded FastAGI server live
in this file, so these checks do not depend on the project's own AMI/FastAGI code.

All calls are originated at once by the module fixture ``calls`` and run in parallel; the
tests then assert what each one saw. Callee numbers follow sandbox-test.conf (4th digit from
the end = behaviour, 3rd = hold seconds).
"""

import queue
import secrets
import socket
import socketserver
import threading
import time

import pytest

pytestmark = pytest.mark.asterisk

CALL_WAIT_S = 40


# -- a minimal AMI client ------------------------------------------------------------------

class MiniAmi:
    """Raw AMI socket: login, send actions, collect every message in a reader thread."""

    def __init__(self, creds, timeout=5):
        self.sock = socket.create_connection((creds.host, creds.port), timeout=timeout)
        self.sock.settimeout(None)
        self.messages = []
        self.cond = threading.Condition()
        self._file = self.sock.makefile("rb")
        self.banner = self._file.readline().decode().strip()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        reply = self.request([("Action", "Login"), ("Username", creds.username),
                              ("Secret", creds.secret)])
        assert reply.get("Response") == "Success", reply

    def _read(self):
        msg = {}
        while True:
            try:
                line = self._file.readline()
            except OSError:
                break
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line:
                key, _, value = line.partition(":")
                msg.setdefault(key.strip(), value.strip())
                continue
            if msg:
                with self.cond:
                    self.messages.append(msg)
                    self.cond.notify_all()
                msg = {}

    def send(self, headers):
        action_id = f"t-{secrets.token_hex(6)}"
        if not any(k == "ActionID" for k, _ in headers):
            headers = [*headers, ("ActionID", action_id)]
        else:
            action_id = dict(headers)["ActionID"]
        self.sock.sendall("".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n")
        return action_id

    def wait_for(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for msg in self.messages:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching AMI message in {timeout}s")
                self.cond.wait(left)

    def request(self, headers, timeout=10):
        action_id = self.send(headers)
        return self.wait_for(lambda m: m.get("ActionID") == action_id and "Response" in m, timeout)

    def close(self):
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        self.sock.close()


# -- a minimal threaded FastAGI server -------------------------------------------------------

class AgiSession:
    """One FastAGI connection: the agi_* environment, the args, and a command/reply helper."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile
        self.env = {}
        self.hungup = False
        self.log = []          # (command, reply) pairs
        self.seen = {}         # what the scenario observed
        while True:
            line = rfile.readline().decode().rstrip("\n")
            if not line:
                break
            key, _, value = line.partition(": ")
            self.env[key] = value
        self.script = self.env.get("agi_network_script", "")
        self.args = [self.env[f"agi_arg_{i}"] for i in range(1, 20) if f"agi_arg_{i}" in self.env]

    def cmd(self, command):
        self.wfile.write(command.encode() + b"\n")
        self.wfile.flush()
        while True:
            line = self.rfile.readline().decode().rstrip("\n")
            if not line:
                raise EOFError(command)
            if line == "HANGUP":
                self.hungup = True
                continue
            if line.startswith("100 "):
                continue
            if line.startswith("520-"):
                while not line.startswith("520 "):
                    line = self.rfile.readline().decode().rstrip("\n")
            self.log.append((command, line))
            return line

    def var(self, name):
        reply = self.cmd(f"GET VARIABLE {name}")
        if reply.startswith("200 result=1 (") and reply.endswith(")"):
            return reply[len("200 result=1 ("):-1]
        return None


class MiniFastAgi(socketserver.ThreadingTCPServer):
    """Runs scenarios[(script, attempt)] (default: just record) and files the sessions."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _AgiHandler)
        self.scenarios = {}
        self.sessions = queue.Queue()
        self.connections = 0
        self.errors = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"agi://127.0.0.1:{self.server_address[1]}"


class _AgiHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.server.connections += 1
        self.request.settimeout(60)
        try:
            session = AgiSession(self.rfile, self.wfile)
        except Exception as exc:   # boundary: keep it visible to the test
            self.server.errors.append(repr(exc))
            raise
        attempt = session.args[0] if session.args else None
        scenario = self.server.scenarios.get((session.script, attempt))
        try:
            if scenario:
                scenario(session)
            elif session.script == "result":
                session.seen["campaign"] = session.var("ACAMP_CAMPAIGN")
        except Exception as exc:   # boundary: a failing scenario must still be reported
            session.seen["error"] = repr(exc)
        finally:
            self.server.sessions.put(session)


# -- the scenarios ---------------------------------------------------------------------------

def connect_env_only(s):
    s.seen["x_name"] = s.var("ACAMP_X_NAME")
    s.seen["campaign"] = s.var("ACAMP_CAMPAIGN")


def connect_stream(s):
    s.seen["stream"] = s.cmd('STREAM FILE hello-world ""')


def connect_dial(s):
    s.seen["exec"] = s.cmd('EXEC Dial "Local/1000@acamp-test-ext/n,10,g"')
    s.seen["DIALSTATUS"] = s.var("DIALSTATUS")


def connect_queue(s):
    s.seen["exec"] = s.cmd('EXEC Queue "acamp-sales,t,,,20"')
    s.seen["hungup_after_exec"] = s.hungup
    for name in ("QUEUESTATUS", "MEMBERINTERFACE", "MEMBERNAME", "ANSWEREDTIME"):
        s.seen[name] = s.var(name)


def connect_conference(s):
    s.seen["exec"] = s.cmd('EXEC ConfBridge "acamp-room"')
    s.seen["CONFBRIDGE_RESULT"] = s.var("CONFBRIDGE_RESULT")


def number(behaviour, hold=0, tail="00"):
    return f"1202555{behaviour}{hold}{tail}"


# attempt id -> (callee number, dial timeout s, connect scenario or None)
CALLS = {
    "101": (number(1, 1), 5, connect_env_only),
    "102": (number(2), 5, None),
    "103": (number(3), 2, None),
    "104": (number(4), 5, None),
    "105": (number(5), 5, None),
    "106": (number(9), 5, None),
    "111": (number(1, 4, "11"), 5, connect_stream),
    "112": (number(1, 6, "12"), 5, connect_dial),
    "113": (number(1, 7, "13"), 5, connect_queue),
    "114": (number(1, 2, "14"), 5, connect_conference),
}


def originate(ami, agi_url, attempt, token, dial, timeout_s, campaign="7"):
    """The Originate of docs/DESIGN.md's dialplan contract."""
    ident = f"acamp-sbx-{attempt}-{token}"
    return ami.request([
        ("Action", "Originate"), ("ActionID", ident),
        ("Channel", f"Local/{attempt}@agi-campaign-dialout/n"),
        ("Context", "agi-campaign-connect"), ("Exten", "s"), ("Priority", "1"),
        ("Timeout", str((timeout_s + 10) * 1000)),
        ("CallerID", '"Test" <12025550100>'), ("Async", "true"),
        ("ChannelId", ident), ("OtherChannelId", f"{ident}-2"),
        ("Variable", f"ACAMP_ATTEMPT={attempt}"), ("Variable", f"ACAMP_TOKEN={token}"),
        ("Variable", f"ACAMP_KEY=sbx-{attempt}"),
        ("Variable", f"ACAMP_DIAL={dial}"), ("Variable", f"ACAMP_TIMEOUT={timeout_s}"),
        ("Variable", f"ACAMP_AGI={agi_url}"), ("Variable", f"ACAMP_CAMPAIGN={campaign}"),
        ("Variable", "ACAMP_X_NAME=Alice"),
    ])


def collect(agi, wanted, timeout=CALL_WAIT_S):
    """Sessions by (script, attempt) until every wanted key arrived."""
    got = {}
    deadline = time.monotonic() + timeout
    while not wanted <= got.keys():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"FastAGI sessions missing after {timeout}s: "
                                 f"{sorted(wanted - got.keys())}; got {sorted(got)}, "
                                 f"connections={agi.connections}, errors={agi.errors}")
        try:
            s = agi.sessions.get(timeout=left)
        except queue.Empty:
            continue
        got[(s.script, s.args[0] if s.args else None)] = s
    return got


@pytest.fixture(scope="module")
def agi_server():
    server = MiniFastAgi()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def calls(asterisk, agi_server):
    """Originate every call of CALLS at once; return tokens, originate replies, sessions."""
    ami = MiniAmi(asterisk.ami_credentials)
    tokens = {a: secrets.token_hex(4) for a in CALLS}
    replies = {}
    began = time.monotonic()
    try:
        for attempt, (num, timeout_s, scenario) in CALLS.items():
            if scenario:
                agi_server.scenarios[("connect", attempt)] = scenario
            replies[attempt] = originate(ami, agi_server.url, attempt, tokens[attempt],
                                         asterisk.dial_template.format(number=num), timeout_s)
        wanted = {("result", a) for a in CALLS} | {("connect", a) for a, c in CALLS.items() if c[2]}
        sessions = collect(agi_server, wanted)
        responses = {a: ami.wait_for(lambda m, a=a: m.get("Event") == "OriginateResponse"
                                     and m.get("ActionID") == f"acamp-sbx-{a}-{tokens[a]}")
                     for a in CALLS}
    finally:
        ami.close()
    return {"tokens": tokens, "replies": replies, "sessions": sessions,
            "responses": responses, "elapsed_s": time.monotonic() - began}


# -- the tests -------------------------------------------------------------------------------

def test_originate_is_queued(calls):
    for attempt, reply in calls["replies"].items():
        assert reply["Response"] == "Success", (attempt, reply)


@pytest.mark.parametrize("attempt, dialstatus", [
    ("101", "ANSWER"), ("102", "BUSY"), ("103", "NOANSWER"), ("104", "CONGESTION"),
    ("105", "CHANUNAVAIL"), ("106", "CHANUNAVAIL"),
])
def test_result_script_gets_dialstatus_per_callee_behaviour(calls, attempt, dialstatus):
    s = calls["sessions"][("result", attempt)]
    token = calls["tokens"][attempt]
    assert s.args[:3] == [attempt, token, dialstatus], s.args
    assert len(s.args) == 6, s.args         # + HANGUPCAUSE, ANSWEREDTIME, DIALEDTIME
    assert s.args[3].isdigit(), s.args
    assert s.seen.get("campaign") in (None, "7")   # the scenario-less result reads it
    if dialstatus == "ANSWER":
        assert 0 <= int(s.args[4]) <= int(s.args[5]), s.args    # ANSWEREDTIME <= DIALEDTIME
    else:
        assert s.args[4:] == ["", ""], s.args   # Dial sets both only for a bridged call
    response = calls["responses"][attempt]
    assert response["Response"] == ("Success" if dialstatus == "ANSWER" else "Failure"), response


def test_result_script_sees_campaign_variables_on_the_dead_channel(calls):
    assert calls["sessions"][("result", "102")].seen["campaign"] == "7"


def test_only_answered_calls_run_connect(calls):
    answered = {a for a, c in CALLS.items() if c[0][-4] == "1"}
    assert {a for (script, a) in calls["sessions"] if script == "connect"} == answered


def test_connect_gets_attempt_token_and_csv_columns(calls):
    s = calls["sessions"][("connect", "101")]
    assert s.args == ["101", calls["tokens"]["101"]]
    assert s.env["agi_context"] == "agi-campaign-connect"
    assert s.env["agi_channel"].startswith("Local/101@agi-campaign-dialout")
    assert s.seen == {"x_name": "Alice", "campaign": "7"}


def test_failed_extension_logs_unanswered_originates(asterisk, calls):
    assert "agi-campaign attempt=102 originate failed, reason=0" in asterisk.log_path.read_text()


def test_connect_stream_file_plays(calls):
    reply = calls["sessions"][("connect", "111")].seen["stream"]
    assert reply.startswith("200 result=0 endpos="), reply


def test_connect_dial_extension_answers(calls):
    seen = calls["sessions"][("connect", "112")].seen
    assert seen["exec"] == "200 result=0" and seen["DIALSTATUS"] == "ANSWER", seen


def test_connect_queue_agent_answers_and_sets_memberinterface(calls):
    seen = calls["sessions"][("connect", "113")].seen
    assert seen["exec"] == "200 result=-1", seen   # the agent hung up; without option c: -1
    assert seen["MEMBERINTERFACE"] == "Local/100@acamp-test-agent/n", seen
    assert seen["QUEUESTATUS"] is None, seen   # set only when the caller leaves unanswered


def test_connect_confbridge_returns_hangup(calls):
    seen = calls["sessions"][("connect", "114")].seen
    assert seen["CONFBRIDGE_RESULT"] == "HANGUP", seen


def test_no_channel_left_after_the_calls(asterisk, calls):
    assert asterisk.wait_channels(0, timeout=10), asterisk.cli("core show channels")


def test_two_sandboxes_side_by_side(asterisk, asterisk_factory, agi_server, calls):
    other = asterisk_factory(ami_write="originate,call")      # no "reporting"
    assert other.ami_port != asterisk.ami_port and other.running and asterisk.running
    assert other.etc_dir != asterisk.etc_dir
    token = secrets.token_hex(4)
    ami = MiniAmi(other.ami_credentials)
    try:
        originate(ami, agi_server.url, "201", token,
                  other.dial_template.format(number=number(2)), 5)
        denied = ami.request([("Action", "CoreShowChannels")])
    finally:
        ami.close()
    assert collect(agi_server, {("result", "201")})[("result", "201")].args[:3] == \
        ["201", token, "BUSY"]
    assert denied["Response"] == "Error" and "Permission denied" in denied["Message"], denied
    ami = MiniAmi(asterisk.ami_credentials)                   # read=call, write=...,reporting
    try:
        listed = ami.request([("Action", "CoreShowChannels")])
    finally:
        ami.close()
    assert listed["Response"] == "Success", listed


def test_sandbox_restart_keeps_port(asterisk_factory):
    box = asterisk_factory()
    port = box.ami_port
    box.restart()
    assert box.running and box.ami_port == port
    assert "acamp-sales" in box.cli("queue show acamp-sales")
    assert box.count_channels() == 0
