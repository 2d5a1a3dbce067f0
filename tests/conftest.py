"""Shared fixtures: the real Asterisk 22 sandbox (agi_campaign.testing.sandbox).

A missing chroot FAILS the tests that need Asterisk (never skips): build it with
`make asterisk` (as root) or set AGI_CAMPAIGN_CHROOT. AGI_CAMPAIGN_KEEP_SANDBOX=1 keeps
each sandbox's directory (<chroot>/etc/acamp-<name>/, logs in log/) after the tests.
"""

import os

import pytest

from agi_campaign.testing import sandbox as sandbox_mod


def _require_chroot():
    root = sandbox_mod.chroot_path()
    if not sandbox_mod.chroot_ready(root):
        pytest.fail(f"no Asterisk 22 chroot at {root}: run `make asterisk` as root "
                    f"(or set {sandbox_mod.CHROOT_ENV} to a built one)", pytrace=False)


class AsteriskFactory:
    """Starts extra sandboxes (unique names per test process); stops and removes them at teardown."""

    def __init__(self):
        self._boxes = []

    def __call__(self, **kwargs):
        _require_chroot()
        name = kwargs.pop("name", None) or f"t{os.getpid()}-{len(self._boxes) + 1}"
        box = sandbox_mod.AsteriskSandbox(name, **kwargs)
        self._boxes.append(box)
        box.start()
        return box

    def close(self):
        keep = os.environ.get("AGI_CAMPAIGN_KEEP_SANDBOX") == "1"
        while self._boxes:
            box = self._boxes.pop()
            box.stop() if keep else box.cleanup()


@pytest.fixture(scope="session")
def asterisk_session_factory():
    factory = AsteriskFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def asterisk(asterisk_session_factory):
    """One running AsteriskSandbox shared by the whole session (AMI on a free port)."""
    return asterisk_session_factory(name=f"t{os.getpid()}-main")


@pytest.fixture
def asterisk_factory():
    """Call it (kwargs as AsteriskSandbox) to start more sandboxes; all stop at teardown."""
    factory = AsteriskFactory()
    yield factory
    factory.close()
