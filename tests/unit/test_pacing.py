import random

import pytest

from agi_campaign.pacing import Pacer, allowed_now, wait_ms


def allowed(**overrides):
    args = dict(in_flight=0, max_channels=10, delay_ms=0, ms_since_last_start=None,
                window_open=True)
    args.update(overrides)
    return allowed_now(**args)


def test_pacing_closed_window_allows_nothing():
    assert allowed(window_open=False) == 0


def test_pacing_no_free_channel_allows_nothing():
    assert allowed(in_flight=10) == 0
    assert allowed(in_flight=12) == 0          # over the cap (config lowered): still 0


def test_pacing_zero_delay_fills_free_channels():
    assert allowed(in_flight=3) == 7
    assert allowed(in_flight=3, ms_since_last_start=0.0) == 7


def test_pacing_delay_allows_one_after_spacing():
    assert allowed(delay_ms=500) == 1                                # never started
    assert allowed(delay_ms=500, ms_since_last_start=499.9) == 0
    assert allowed(delay_ms=500, ms_since_last_start=500) == 1
    assert allowed(delay_ms=500, ms_since_last_start=500, in_flight=10) == 0
    assert allowed(delay_ms=500, ms_since_last_start=500, window_open=False) == 0


def test_pacing_negative_delay_is_rejected():
    with pytest.raises(ValueError):
        allowed(delay_ms=-1)


def test_pacing_wait_ms():
    assert wait_ms(delay_ms=0, ms_since_last_start=0) == 0
    assert wait_ms(delay_ms=500, ms_since_last_start=None) == 0
    assert wait_ms(delay_ms=500, ms_since_last_start=200) == 300
    assert wait_ms(delay_ms=500, ms_since_last_start=800) == 0


class FakeMonotonic:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_pacing_pacer_records_starts():
    clock = FakeMonotonic()
    pacer = Pacer(clock)
    assert pacer.allowed(0, 5, 1000, True) == 1
    assert pacer.wait_s(1000) == 0
    pacer.started()
    assert pacer.allowed(0, 5, 1000, True) == 0
    clock.t += 0.25
    assert pacer.wait_s(1000) == pytest.approx(0.75)
    clock.t += 0.75
    assert pacer.allowed(1, 5, 1000, True) == 1
    pacer.started(0)                                  # nothing started: spacing unchanged
    assert pacer.allowed(1, 5, 1000, True) == 1


@pytest.mark.parametrize("seed", range(40))
def test_pacing_simulated_loop_never_exceeds_cap_and_honours_spacing(seed):
    rng = random.Random(seed)
    max_channels = rng.randint(1, 20)
    delay_ms = rng.choice([0, 0, 1, 10, 50, 200, 1000])
    tick_s = rng.choice([0.01, 0.05, 0.2])
    clock = FakeMonotonic()
    pacer = Pacer(clock)
    calls_end = []          # end times of calls in flight (claim .. result)
    starts = []
    due = rng.randint(0, 300)
    for _ in range(2000):                                           # bounded
        calls_end = [end for end in calls_end if end > clock.t]
        window_open = rng.random() > 0.05
        n = pacer.allowed(len(calls_end), max_channels, delay_ms, window_open)
        assert n >= 0
        assert len(calls_end) + n <= max_channels
        claimed = min(n, due)  # the claim takes at most n of the due numbers
        if claimed:
            assert window_open
            pacer.started(claimed)
            starts.extend([clock.t] * claimed)
            calls_end.extend(clock.t + rng.uniform(0.0, 3.0) for _ in range(claimed))
            due -= claimed
        due += rng.choice([0, 0, 0, 1, 5])
        clock.t += tick_s * rng.uniform(0.5, 1.5)
    if delay_ms > 0:
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert all(gap * 1000 >= delay_ms - 1e-6 for gap in gaps)
    assert starts, "the simulation should have started some calls"
