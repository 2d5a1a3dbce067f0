"""Fake of a peer, not helpers: the Asterisk side of a FastAGI connection, for socket tests of
agi_campaign.fastagi (used by tests/unit and tests/hostile)."""
import socket

TIMEOUT_S = 5


class FakeAsterisk:
    """The Asterisk side of one FastAGI connection."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=TIMEOUT_S)
        self.buf = b""

    def send(self, *lines):
        self.sock.sendall("".join(line + "\n" for line in lines).encode("utf-8"))

    def send_raw(self, data):
        """Bytes as they are (garbage, partial lines, a whole environment)."""
        self.sock.sendall(data)

    def send_env(self, script="connect", args=("101", "deadbeef"), uniqueid="1700000000.1"):
        lines = ["agi_network: yes", "agi_network_script: %s" % script,
                 "agi_request: agi://127.0.0.1/%s" % script,
                 "agi_channel: Local/101@agi-campaign-dialout-00000001;1",
                 "agi_uniqueid: %s" % uniqueid]
        lines += ["agi_arg_%d: %s" % (n, value) for n, value in enumerate(args, start=1)]
        self.send(*lines, "")

    def read_line(self):
        """One line without '\\n'; None at EOF. socket.timeout fails the test."""
        for _ in range(1000):
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                return line.decode("utf-8")
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buf += chunk
        raise AssertionError("no line within 1000 reads")

    def expect(self, command, *replies):
        assert self.read_line() == command
        self.send(*replies)

    def closed_by_server(self):
        """True when the server closes the connection (EOF or reset) within the timeout."""
        try:
            return self.read_line() is None
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()
