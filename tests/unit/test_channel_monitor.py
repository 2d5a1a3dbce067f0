"""The tests' call counter (harness.ChannelMonitor) stays truthful when Asterisk drops its AMI
session: after reconnecting it corrects its live legs from CoreShowChannels, so a Hangup lost
in the gap never shows up as a number in two calls at once."""
import collections

from agi_campaign.testing.harness import ChannelMonitor
from agi_campaign.testing.sandbox import AmiCredentials

from tests.unit.fakeami import FakeAmiServer
from tests.unit.support import wait_until

LEG = "Local/12025551300@acamp-test-callees-%08x;1"


def test_channel_monitor_resynchronises_after_a_dropped_session():
    with FakeAmiServer() as server:
        box = collections.namedtuple("Box", "name monitor_credentials")(
            "fake", AmiCredentials("127.0.0.1", server.port, server.username, server.secret))
        with ChannelMonitor(box) as mon:
            server.broadcast({"Event": "Newchannel", "Channel": LEG % 1,
                              "Uniqueid": "acamp-ab12-7-00000000000000aa"})
            assert wait_until(lambda: mon.started == 1)
            # The session drops; meanwhile leg 1 hangs up and leg 2 (another number) comes up.
            server.channels = [LEG.replace("5551300", "5551301") % 2]
            server.drop_all()
            assert wait_until(lambda: mon.drops == 1 and mon.started == 2, 10)
            assert mon.live == {LEG.replace("5551300", "5551301") % 2}
            # The first number is called again: one call, not two at once.
            server.broadcast({"Event": "Newchannel", "Channel": LEG % 3})
            assert wait_until(lambda: mon.started == 3)
        assert mon.number_peak == 1 and mon.peak == 2
        assert mon.ids_of("ab12") == {7}
