import datetime as dt

import pytest

from agi_campaign.errors import StateError
from agi_campaign.lifecycle import CampaignState as S
from agi_campaign.lifecycle import (COMMANDS, ON_DEMAND, SCHEDULED, automatic_target,
                                 command_target)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=UTC)

ALLOWED = {
    (ON_DEMAND, "start", S.READY): S.STARTNOW,
    (ON_DEMAND, "pause", S.READY): S.PAUSED,
    (ON_DEMAND, "pause", S.STARTNOW): S.PAUSED,
    (ON_DEMAND, "pause", S.RUNNING): S.PAUSED,
    (ON_DEMAND, "resume", S.PAUSED): S.STARTNOW,
    (ON_DEMAND, "reset", S.COMPLETED): S.READY,
    (ON_DEMAND, "reset", S.PAUSED): S.READY,
    (SCHEDULED, "pause", S.READY): S.PAUSED,
    (SCHEDULED, "pause", S.RUNNING): S.PAUSED,
    (SCHEDULED, "resume", S.PAUSED): S.READY,
    (SCHEDULED, "reset", S.COMPLETED): S.READY,
    (SCHEDULED, "reset", S.PAUSED): S.READY,
}


@pytest.mark.parametrize("ctype", [ON_DEMAND, SCHEDULED])
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("state", list(S))
def test_states_every_command_allowed_or_refused(ctype, command, state):
    expected = ALLOWED.get((ctype, command, state))
    if expected is not None:
        assert command_target("c1", ctype, state.value, command) == expected
    else:
        with pytest.raises(StateError) as err:
            command_target("c1", ctype, state.value, command)
        assert "c1" in str(err.value)


def test_states_refusal_names_the_allowed_states():
    with pytest.raises(StateError, match=r"c1 is COMPLETED: 'pause' applies only when it is "
                                         r"READY, STARTNOW, RUNNING"):
        command_target("c1", ON_DEMAND, "completed", "pause")


def test_states_scheduled_start_is_refused_with_reason():
    with pytest.raises(StateError, match="starts by its start/end and week_time"):
        command_target("s1", SCHEDULED, "ready", "start")


def test_states_unknown_command():
    with pytest.raises(StateError, match="unknown campaign command 'stop'"):
        command_target("c1", ON_DEMAND, "ready", "stop")


def auto(state, ctype=ON_DEMAND, start=None, end=None, window_open=True, pending=1,
         in_flight=0, now=NOW):
    return automatic_target(state=state, ctype=ctype, now=now, start=start, end=end,
                            window_open=window_open, pending=pending, in_flight=in_flight)


def test_states_on_demand_automatic_moves():
    assert auto("startnow")[0] == S.RUNNING
    assert auto("running") is None
    assert auto("running", pending=0, in_flight=2) is None
    assert auto("running", pending=0, in_flight=0)[0] == S.COMPLETED
    assert auto("ready") is None
    assert auto("paused", pending=0) is None
    assert auto("completed") is None


def test_states_scheduled_follows_window_and_dates():
    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1)
    assert auto("ready", SCHEDULED, start, end)[0] == S.RUNNING
    assert auto("ready", SCHEDULED, start, end, window_open=False) is None
    assert auto("ready", SCHEDULED, NOW + dt.timedelta(hours=1), end) is None
    assert auto("ready", SCHEDULED, start, end, pending=0) is None
    assert auto("running", SCHEDULED, start, end, window_open=False)[0] == S.READY
    assert auto("running", SCHEDULED, start, end, pending=0)[0] == S.COMPLETED
    assert auto("running", SCHEDULED, start, NOW)[0] == S.COMPLETED
    assert auto("running", SCHEDULED, start, NOW, in_flight=1)[0] == S.READY
    assert auto("ready", SCHEDULED, start, NOW, in_flight=1) is None
    assert auto("paused", SCHEDULED, start, end) is None
