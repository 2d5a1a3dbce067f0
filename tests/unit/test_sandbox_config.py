"""Checks of the sandbox's files that need no running Asterisk (the sandbox itself is tested
against Asterisk 22 in tests/integration/test_sandbox.py)."""
import filecmp
from pathlib import Path

from agi_campaign.testing import sandbox as sandbox_mod

REPO = Path(__file__).resolve().parents[2]


def test_dialplan_package_copy_is_identical():
    assert filecmp.cmp(REPO / "dialplan" / "agi-campaign.conf",
                       REPO / "agi_campaign" / "data" / "agi-campaign.conf", shallow=False), \
        "copy dialplan/agi-campaign.conf to agi_campaign/data/agi-campaign.conf"


def test_sandbox_render_config_relocates_every_writable_directory():
    files = sandbox_mod.render_config("x1", 5099, "s3cret", "/usr/lib/mod")
    conf = files["asterisk.conf"]
    for key in ("astetcdir", "astdbdir", "astspooldir", "astrundir", "astlogdir", "astcachedir"):
        assert f"{key} => /etc/acamp-x1" in conf
    assert "res_speech" in files["modules.conf"].split("res_agi")[0]
    assert "port = 5099" in files["manager.conf"]
