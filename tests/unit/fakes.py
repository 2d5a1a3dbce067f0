"""Fakes at the AMI boundary for engine tests (the real client has its own tests)."""
import concurrent.futures
import threading

from agi_campaign.errors import AmiError


class FakeAmi:
    """Records actions; `refuse` makes Originates fail with Response: Error."""

    def __init__(self, connected=True):
        self.connected = connected
        self.actions = []
        self.channels = []
        self.refuse = False
        self.listeners = []
        self._lock = threading.Lock()

    def send(self, action):
        fut = concurrent.futures.Future()
        with self._lock:
            self.actions.append(action)
        if self.refuse:
            fut.set_exception(AmiError("Originate failed: Extension does not exist."))
        else:
            fut.set_result({"Response": "Success", "Message": "Originate successfully queued"})
        return fut

    def collect(self, action, complete_event, timeout=None):
        return [dict(ch) for ch in self.channels]

    def add_listener(self, fn):
        self.listeners.append(fn)

    def originates(self):
        return [a for a in self.actions if a["Action"] == "Originate"]
