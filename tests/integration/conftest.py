"""A dialer service wired to sandbox Asterisk instances, for end-to-end tests."""
import time

import pytest

from agi_campaign import harness
from agi_campaign.config import load_config
from agi_campaign.sandbox import free_port
from agi_campaign.service import Service


class Dialer:
    """Starts agi_campaign.service.Service (FastAGI + scheduler) on a written config."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.services = []
        self.sandboxes = []

    def start(self, campaigns, servers, **kwargs):
        port = free_port()
        path = harness.write_config(self.tmp_path / "config.yaml", servers, port, campaigns,
                                    **kwargs)
        self.sandboxes.extend(servers.values())
        config = load_config(str(path))
        service = Service(config)
        service.start()
        self.services.append(service)
        return service, config

    def close(self):
        for service in self.services:
            service.stop(graceful=False)
        for box in self.sandboxes:
            if box.running:
                box.cli("channel request hangup all")
                box.wait_channels(0, timeout=10)


@pytest.fixture
def dialer(tmp_path):
    d = Dialer(tmp_path)
    yield d
    d.close()


def wait_for(predicate, timeout, step=0.2):
    """Poll `predicate` until it is true; return the seconds it took (or fail)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        time.sleep(step)
    pytest.fail("condition not met within %s s" % timeout, pytrace=False)
