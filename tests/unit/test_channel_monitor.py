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


def _monitored(server, **kwargs):
    box = collections.namedtuple("Box", "name monitor_credentials")(
        "fake", AmiCredentials("127.0.0.1", server.port, server.username, server.secret))
    return ChannelMonitor(box, **kwargs)


def test_channel_monitor_retries_a_failed_resync_until_it_succeeds():
    with FakeAmiServer() as server:
        with _monitored(server) as mon:
            server.broadcast({"Event": "Newchannel", "Channel": LEG % 1, "Timestamp": "100.5"})
            assert wait_until(lambda: mon.started == 1)
            server.fail_next["coreshowchannels"] = 3  # Asterisk busy: three tries refused
            server.channels = []
            server.drop_all()
            assert wait_until(lambda: mon.drops == 1 and mon.resyncs == 1, 10)
            assert not mon.blind and mon.live == set()
            assert len(server.actions_named("CoreShowChannels")) == 4
        assert mon.legs[0] == (100.5, "12025551300", 1) and mon.legs[1][2] == -1


def test_channel_monitor_that_cannot_resync_is_blind():
    with FakeAmiServer() as server:
        with _monitored(server, resync_for_s=1.0) as mon:
            assert not mon.blind
            server.fail_next["coreshowchannels"] = 10 ** 6
            server.drop_all()
            assert wait_until(lambda: mon.gave_up is not None, 10)
            assert mon.blind and "resync failed" in mon.gave_up


def test_channel_monitor_resyncs_before_counting_events_that_beat_the_connected_state():
    """Regression: the AMI client's reader routes the new session's events as soon as the
    login is answered, possibly before it reports "connected"; counted before the resync, a
    number called again after the gap was seen in two calls at once (its first leg's Hangup
    had been missed)."""
    with FakeAmiServer() as server:
        with _monitored(server) as mon:
            server.broadcast({"Event": "Newchannel", "Channel": LEG % 1, "Timestamp": "10.0"})
            assert wait_until(lambda: mon.started == 1)
            server.channels = []  # leg 1 hangs up during the gap
            server.after_login = [{"Event": "Newchannel", "Channel": LEG % 2,
                                   "Timestamp": "20.0"}]  # the number called again
            server.drop_all()
            assert wait_until(lambda: mon.started == 2 and mon.resyncs == 1, 10)
        assert mon.number_peak == 1 and mon.peak_of(["12025551300"]) == 1
        assert [step for _, _, step in mon.legs] == [1, -1, 1]
        assert mon.legs[1][0] == 10.0  # stamped with the last event seen before the gap
