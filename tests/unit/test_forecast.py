"""forecast.estimate: the first completion estimate (pure arithmetic)."""
import datetime as dt

from agi_campaign.forecast import estimate

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def test_forecast_estimate_from_the_observed_rate():
    out = estimate("running", remaining=300, settled=60, window_s=600, now=NOW)
    assert out["per_minute"] == 6.0    # 60 numbers in 10 minutes
    assert out["finishes_at"] == "2026-12-01T09:50:00+00:00"
    assert out["reason"] is None and out["remaining"] == 300
    later = estimate("running", remaining=7, settled=60, window_s=600, now=NOW + dt.timedelta(
        microseconds=250), zone="America/New_York")     # in the campaign's zone, to the second
    assert later["finishes_at"] == "2026-12-01T04:01:10-05:00"


def test_forecast_estimate_unknown_says_why():
    cases = {("running", 10, 0): "no number settled in the last 600 s",
             ("paused", 10, 5): "the campaign is PAUSED, not running",
             ("completed", 0, 5): "no number left to call"}
    for (state, remaining, settled), reason in cases.items():
        out = estimate(state, remaining, settled, 600, NOW)
        assert out["finishes_at"] is None and out["per_minute"] is None
        assert reason in out["reason"]
