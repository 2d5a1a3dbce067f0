"""forecast (the pure completion model) and progress (what it reads from the database)."""
import dataclasses
import datetime as dt

import pytest

from agi_campaign import campaigns, forecast, progress, status
from agi_campaign.claim import claim_due
from agi_campaign.forecast import Chain, Progress, peak_start_rate
from agi_campaign.clock import to_db
from agi_campaign.models import Campaign, Number
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.weektime import WeekTime, open_spans, parse_week_time

from tests.unit.support import T0, campaign_config, make_numbers

UTC = dt.timezone.utc


def cfg(**kw):
    return campaign_config(**kw).campaigns["c1"]


def seen(*groups):
    """Observed rows: (previous outcome, outcome, how many, duration s each), all started
    100 s ago (one claim: no pace of the dialer's own to see)."""
    return tuple((prev, outcome, d, 100.0) for prev, outcome, n, d in groups
                 for _ in range(n))


def finish_s(out, now=T0):
    return (dt.datetime.fromisoformat(out["finishes_at"]) - now).total_seconds()


def fresh(count):
    return ((0, None, 0.0, count),)


def days_after(n, now=T0):
    return (now + dt.timedelta(days=n)).strftime("%Y-%m-%dT%H:%M")


ANSWERED_10S = seen((None, "answered", 50, 10.0))


def test_forecast_channel_bound():
    """1000 numbers answered in 10 s on 10 channels: 1000 s (and the tick's gap per call)."""
    out = forecast.forecast(cfg(max_channels=10), "running",
                            Progress(due=fresh(1000), observed=ANSWERED_10S), T0, gap_s=0.0)
    assert abs(finish_s(out) - 1000) <= 20
    assert out["limited_by"] == "max_channels" and out["attempts"] == 1000
    assert out["reason"] is None and out["remaining"] == 1000
    assert out["per_minute"] == 60.0 and out["mean_attempt_s"] == 10.0
    assert out["finishes_at"].endswith("+00:00")


def test_forecast_delay_ms_bound():
    """One start every 2 s whatever the channels: 1000 numbers take 2000 s."""
    out = forecast.forecast(cfg(max_channels=100, delay_ms=2000), "running",
                            Progress(due=fresh(1000), observed=ANSWERED_10S), T0, gap_s=0.0)
    assert abs(finish_s(out) - 2000) <= 20
    assert out["limited_by"] == "delay_ms" and out["per_minute"] == 30.0


def test_forecast_the_dialers_own_pace_bounds_it():
    """Starts seen one every 0.5 s at best (slower than delay_ms allows): that pace is used."""
    observed = tuple((None, "answered", 1.0, 0.5 * i) for i in range(40))
    out = forecast.forecast(cfg(max_channels=100, delay_ms=10), "running",
                            Progress(due=fresh(100), observed=observed), T0, gap_s=0.0)
    assert out["limited_by"] == "start rate" and abs(finish_s(out) - 50) <= 2
    assert peak_start_rate([0.0, 0.5, 1.0, 1.1, 1.2], 3) == pytest.approx(10.0)
    assert peak_start_rate([1.0, 1.0, 1.0], 3) is None     # one claim of three: no pace seen
    assert peak_start_rate([1.0], 3) is None


def test_forecast_retries_come_in_waves_after_their_delay():
    """Half answer, half are busy and stay busy: busy numbers retry 600 s after each busy, up
    to max_attempts 3, so the last wave ends about 2 x (600 s + 1 s) after the first."""
    observed = seen((None, "answered", 50, 1.0), (None, "busy", 50, 1.0),
                    ("busy", "busy", 20, 1.0))
    c = cfg(max_channels=100, max_attempts=3, retry={"busy": {"delay_s": 600}})
    out = forecast.forecast(c, "running", Progress(due=fresh(100), observed=observed), T0,
                            gap_s=0.0)
    assert 1190 <= finish_s(out) <= 1215
    assert abs(out["attempts"] - 200) <= 4          # 100 + 50 + 50
    capped = cfg(max_channels=100, max_attempts=3, retry={"busy": {"delay_s": 600, "max": 1}})
    out = forecast.forecast(capped, "running", Progress(due=fresh(100), observed=observed), T0,
                            gap_s=0.0)
    assert 590 <= finish_s(out) <= 615 and abs(out["attempts"] - 150) <= 3


def test_forecast_numbers_waiting_for_a_retry_start_when_due():
    """10 numbers due in 300 s (a busy retry waiting) and nothing else: 300 s plus a call."""
    due = ((1, "busy", 300.0, 10),)
    out = forecast.forecast(cfg(max_channels=10, max_attempts=2), "running",
                            Progress(due=due, observed=ANSWERED_10S), T0, gap_s=0.0)
    assert 300 <= finish_s(out) <= 315


def test_forecast_calls_in_flight_end_and_free_their_channels():
    """One channel, busy with an answered call 8 s into its 10: the next 3 numbers start after
    it, 2 + 3 x 10 s."""
    inflight = ((0, None, 8.0, True),)
    out = forecast.forecast(cfg(max_channels=1), "running",
                            Progress(due=fresh(3), in_flight=inflight, observed=ANSWERED_10S),
                            T0, gap_s=0.0)
    assert abs(finish_s(out) - 32) <= 1.5
    assert out["remaining"] == 4


def test_forecast_closed_windows_shift_the_work():
    """Open mon-fri 09:00-10:00 UTC; on Friday at 09:30 an hour of calls is left: half today,
    half on Monday from 09:00, so it finishes on Monday about 09:30."""
    friday = dt.datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    c = cfg(max_channels=1, type="scheduled", start="2026-11-01T00:00",
            end="2027-01-01T00:00", week_time="mon-fri 09:00-10:00", timezone="UTC")
    out = forecast.forecast(c, "running", Progress(due=fresh(360), observed=ANSWERED_10S),
                            friday, gap_s=0.0)
    monday = dt.datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert abs(finish_s(out, monday)) <= 60, out["finishes_at"]
    assert out["cannot_finish_before_end"] is False


def test_forecast_before_a_scheduled_start():
    """A scheduled campaign waiting for its start an hour ahead is forecast from that start."""
    c = cfg(max_channels=10, type="scheduled", start="2026-12-01T10:00",
            end="2027-01-01T00:00", timezone="UTC")
    out = forecast.forecast(c, "ready", Progress(due=fresh(100), observed=ANSWERED_10S), T0,
                            gap_s=0.0)
    assert abs(finish_s(out) - 3600 - 100) <= 5


def test_forecast_before_a_scheduled_start_with_no_call_ended():
    """A READY scheduled campaign has no ended call before its start: it is forecast from the
    prior mix and durations, marked rough, and warns when its end comes first."""
    c = cfg(max_channels=10, type="scheduled", start="2026-12-01T10:00",
            end="2027-01-01T00:00", timezone="UTC")
    out = forecast.forecast(c, "ready", Progress(due=fresh(100)), T0, gap_s=0.0)
    assert out["reason"] is None and out["rough"] is True and out["observed"] == 0
    first_wave = 100 * sum(p * Chain((), (), c.dial_timeout_s).duration_s(o)
                           for o, p in forecast.PRIOR_MIX.items()) / 10
    assert 3600 + first_wave <= finish_s(out) <= 3600 + 3 * first_wave + 2 * c.retry_delay_s
    assert out["cannot_finish_before_end"] is False
    short = cfg(max_channels=1, type="scheduled", start="2026-12-01T10:00",
                end="2026-12-01T11:00", timezone="UTC")
    late = forecast.forecast(short, "ready", Progress(due=fresh(10000)), T0, gap_s=0.0)
    # at most 3600 s / the mean first attempt (~25 s) attempts fit: 150 numbers, fewer settled
    assert late["cannot_finish_before_end"] is True and 9850 <= late["left_at_end"] < 10000
    line = status.render_forecast(out)
    assert line.startswith("forecast: rough (0 call(s) ended, a prior fills in), finishes ")
    assert "rough" not in status.render_forecast(forecast.forecast(
        c, "ready", Progress(due=fresh(100), observed=ANSWERED_10S), T0))


def test_forecast_cannot_finish_when_the_finish_lies_beyond_the_horizon():
    """Regression: a finish beyond HORIZON (or a simulation that gave up) left
    cannot_finish_before_end false for exactly the campaigns that need it. 2,000,000 numbers
    of 30 s on one channel and the end 2 days ahead: 172,800 s / 30 s = 5,760 calls fit."""
    thirty = seen((None, "answered", 50, 30.0))
    c = cfg(max_channels=1, type="scheduled", start="2026-11-01T00:00", end=days_after(2),
            timezone="UTC")
    out = forecast.forecast(c, "running", Progress(due=fresh(2_000_000), observed=thirty), T0,
                            gap_s=0.0)
    assert out["finishes_at"] is None
    assert out["reason"] == "no finish within 366 days at this pace"
    assert out["cannot_finish_before_end"] is True
    assert abs(out["left_at_end"] - (2_000_000 - 5760)) <= 5
    line = status.render_forecast(out)
    assert line.startswith("forecast: none (no finish within 366 days at this pace); CANNOT ")
    assert "about %d number(s) left" % out["left_at_end"] in line
    # half an hour a week for 26 weeks: 26 x 60 calls of 100,000
    sunday = cfg(max_channels=1, type="scheduled", start="2026-11-01T00:00",
                 end=days_after(182), timezone="UTC", week_time="sun 02:00-02:30")
    out = forecast.forecast(sunday, "running", Progress(due=fresh(100_000), observed=thirty),
                            T0, gap_s=0.0)
    assert out["cannot_finish_before_end"] is True
    assert abs(out["left_at_end"] - (100_000 - 26 * 60)) <= 60


def test_forecast_says_when_the_start_or_the_window_lies_beyond_the_horizon():
    """Distinct reasons: a start more than HORIZON ahead, a week_time that never opens (not a
    config a check accepts: built by hand), numbers due beyond HORIZON; not "at this pace"."""
    far = cfg(type="scheduled", start=days_after(400), end=days_after(430), timezone="UTC")
    out = forecast.forecast(far, "ready", Progress(due=fresh(10)), T0)
    assert out["reason"] == "its start %s is more than 366 days ahead" % (
        far.start.strftime("%Y-%m-%d %H:%M:%S +00:00"))
    assert out["cannot_finish_before_end"] is False and out["finishes_at"] is None
    never = dataclasses.replace(
        cfg(type="scheduled", start="2026-11-01T00:00", end=days_after(10), timezone="UTC"),
        week_time=WeekTime(text="never", days=((),) * 7))
    out = forecast.forecast(never, "running", Progress(due=fresh(10)), T0)
    assert out["reason"] == "its week_time 'never' opens no calling window within 366 days"
    assert out["cannot_finish_before_end"] is True and out["left_at_end"] == 10
    out = forecast.forecast(cfg(), "running", Progress(
        due=((0, None, 400 * 86400.0, 10),), observed=ANSWERED_10S), T0)
    assert out["reason"] == "its numbers fall due more than 366 days ahead"


def test_forecast_never_finishes_before_the_numbers_fall_due(monkeypatch):
    """Regression: widening the step snapped due times to a coarse grid (10 numbers due in 400
    days finished about 320 days ahead). 10 numbers due in 300 days behind 1,000,000 fresh ones
    (116 days on one channel) finish after they fall due; with the step widened 64 times
    (MAX_STEPS made small: 212-day steps) there is no finish rather than one 213 days ahead."""
    due = fresh(1_000_000) + ((0, None, 300 * 86400.0, 10),)
    c = cfg(max_channels=1)
    exact = forecast.forecast(c, "running", Progress(due=due, observed=ANSWERED_10S), T0,
                              gap_s=0.0)
    assert 300 * 86400 + 10 <= finish_s(exact) <= 301 * 86400, exact["finishes_at"]
    monkeypatch.setattr(forecast, "MAX_STEPS", 3)
    widened = forecast.forecast(c, "running", Progress(due=due, observed=ANSWERED_10S), T0,
                                gap_s=0.0)
    assert widened["finishes_at"] is None, widened["finishes_at"]
    assert widened["reason"] == "no finish within 366 days at this pace"


def test_forecast_odd_inputs_do_not_crash():
    """Slowest pace the config allows, channels or spacing at zero or below (not valid configs:
    built by hand), numbers due only after the end."""
    slow = cfg(max_channels=1, delay_ms=600000)
    out = forecast.forecast(slow, "running", Progress(due=fresh(1_000_000),
                                                      observed=ANSWERED_10S), T0)
    assert out["reason"] == "no finish within 366 days at this pace"
    for bad in (dict(max_channels=0), dict(delay_ms=-5)):
        out = forecast.forecast(dataclasses.replace(cfg(), **bad), "running",
                                Progress(due=fresh(100), observed=ANSWERED_10S), T0)
        assert (out["finishes_at"] is None) == ("max_channels" in bad)
        assert out["per_minute"] is None or out["per_minute"] > 0
    c = cfg(type="scheduled", start="2026-11-01T00:00", end=days_after(2), timezone="UTC")
    after = Progress(due=((0, None, 3 * 86400.0, 10),), observed=ANSWERED_10S)
    out = forecast.forecast(c, "running", after, T0, gap_s=0.0)
    assert out["cannot_finish_before_end"] is True and out["left_at_end"] == 10
    assert finish_s(out) >= 3 * 86400


def test_forecast_cannot_finish_before_end():
    """Two hours of calls and the end in one: about half the numbers are left at the end."""
    c = cfg(max_channels=1, type="scheduled", start="2026-11-01T00:00",
            end="2026-12-01T10:00", timezone="UTC")
    out = forecast.forecast(c, "running", Progress(due=fresh(720), observed=ANSWERED_10S), T0,
                            gap_s=0.0)
    assert out["cannot_finish_before_end"] is True
    assert abs(finish_s(out) - 7200) <= 60
    assert 340 <= out["left_at_end"] <= 380
    fits = forecast.forecast(c, "running", Progress(due=fresh(300), observed=ANSWERED_10S), T0,
                             gap_s=0.0)
    assert fits["cannot_finish_before_end"] is False and fits["left_at_end"] is None


def test_forecast_says_why_there_is_none():
    c = cfg()
    due = Progress(due=fresh(5), observed=ANSWERED_10S)
    cases = [("running", Progress(observed=ANSWERED_10S), "no number left to call"),
             ("paused", due, "the campaign is PAUSED, not running"),
             ("completed", due, "the campaign is COMPLETED, not running"),
             ("ready", due, "it runs once started")]
    for state, prog, reason in cases:
        out = forecast.forecast(c, state, prog, T0)
        assert out["finishes_at"] is None and reason in out["reason"]
        assert out["cannot_finish_before_end"] is False
    ended = cfg(type="scheduled", start="2026-11-01T00:00", end="2026-11-30T00:00",
                timezone="UTC")
    assert "has passed" in forecast.forecast(ended, "ready", due, T0)["reason"]
    # a running campaign with no call ended yet: a rough forecast from the prior
    rough = forecast.forecast(c, "running", Progress(due=fresh(5)), T0)
    assert rough["reason"] is None and rough["finishes_at"] and rough["rough"] is True


def test_forecast_chain_counts_calls_in_flight_by_what_they_show():
    """An answered call in flight counts as answered; one ringing longer than every ended
    unanswered call as noanswer; the mix of a retried number leans to its last outcome."""
    chain = Chain(seen((None, "busy", 10, 0.1), (None, "answered", 5, 3.0)),
                  ((0, None, 4.0, True), (0, None, 2.0, False)), dial_timeout_s=30)
    assert chain.running(4.0, True) == (("answered", 1.0, 4.0),)
    assert chain.running(2.0, False) == (("noanswer", 1.0, 31.0),)
    first = dict(chain.next(None))
    assert abs(sum(first.values()) - 1) < 1e-9 and first["busy"] > first["answered"]
    assert dict(chain.next("busy"))["busy"] == 1.0
    assert chain.duration_s("busy") == pytest.approx(0.1) and chain.duration_s("noanswer") > 30


def test_weektime_open_spans_clip_and_merge():
    wt = parse_week_time("mon-fri 09:00-10:00,10:00-11:00")
    spans = open_spans(wt, "UTC", dt.datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
                       dt.datetime(2026, 12, 8, 10, 0, tzinfo=UTC))
    assert [(a.isoformat(), b.isoformat()) for a, b in spans] == [
        ("2026-12-04T09:30:00+00:00", "2026-12-04T11:00:00+00:00"),
        ("2026-12-07T09:00:00+00:00", "2026-12-07T11:00:00+00:00"),
        ("2026-12-08T09:00:00+00:00", "2026-12-08T10:00:00+00:00")]


def test_progress_reads_due_numbers_flight_and_history(db, monkeypatch):
    """progress.read: numbers waiting for a retry by due time, calls in flight with their age,
    ended attempts with their number's previous outcome; forecast_of forecasts from them."""
    config = campaign_config(max_attempts=3, retry={"busy": {"delay_s": 120}})
    c = config.campaigns["c1"]
    campaigns.sync_campaigns(config, T0)
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, 4)
    recorder = Recorder(lambda name: RetryPolicy.of(c))
    first = claim_due(row.id, 4, T0, "main", (), 3)
    for item in first[:3]:
        recorder.record_result(item.attempt_id, item.token, "BUSY", 17, 0, 1,
                               T0 + dt.timedelta(seconds=1))
    t1 = T0 + dt.timedelta(seconds=125)
    again = claim_due(row.id, 1, t1, "main", (), 3)     # a busy number's retry, due at 121 s
    assert again[0].seq == 2
    recorder.record_result(again[0].attempt_id, again[0].token, "BUSY", 17, 0, 1,
                           t1 + dt.timedelta(seconds=2))
    now = t1 + dt.timedelta(seconds=10)
    got = progress.read(row.id, c, now)
    due = {(a, last): (s, n) for a, last, s, n in got.due}
    assert set(due) == {(1, "busy"), (2, "busy")}
    assert due[(1, "busy")] == (0.0, 2)                  # due since 121 s
    assert due[(2, "busy")][1] == 1 and abs(due[(2, "busy")][0] - 112) <= 4
    assert got.in_flight == ((0, None, 135.0, False),)
    observed = sorted((prev or "", outcome, d) for prev, outcome, d, _ in got.observed)
    assert observed == [("", "busy", 1.0)] * 3 + [("busy", "busy", 2.0)]
    assert got.remaining == 4
    campaigns.move(row, "running", "test", now)
    out = progress.forecast_of(Campaign.get(Campaign.id == row.id), c, now)
    assert out["reason"] is None and out["remaining"] == 4 and out["finishes_at"]
    assert out["attempts"] >= 4
    # a paused campaign gets no forecast: given status's count, nothing is read, same answer
    campaigns.move(row, "paused", "test", now)
    paused = Campaign.get(Campaign.id == row.id)
    read = progress.forecast_of(paused, c, now)
    assert read["reason"] == "the campaign is PAUSED, not running" and read["remaining"] == 4
    reads = []
    monkeypatch.setattr(progress, "read", lambda *a, **k: reads.append(a))
    assert progress.forecast_of(paused, c, now, remaining=4) == read and reads == []


def test_progress_tells_many_due_numbers_apart_from_samples(db, monkeypatch):
    """Beyond DUE_SAMPLE numbers due now, their attempts and last outcomes come from the ones
    the claim takes first and the ones that fell due last (here: exact, 8 fresh and 2 retries)."""
    monkeypatch.setattr(progress, "DUE_SAMPLE", 4)
    config = campaign_config()
    campaigns.sync_campaigns(config, T0)
    row = Campaign.get(Campaign.name == "c1")
    phones = make_numbers(row, 10)
    Number.update(attempts=1, last_outcome="busy", next_attempt_at=to_db(
        T0 + dt.timedelta(seconds=5))).where(Number.phone.in_(phones[-2:])).execute()
    got = progress.read(row.id, config.campaigns["c1"], T0 + dt.timedelta(seconds=10),
                        observe=False)
    assert sorted(got.due, key=str) == sorted([(0, None, 0.0, 8), (1, "busy", 0.0, 2)], key=str)


def test_status_shows_the_forecast(db):
    """status rows (status --json, the API's objects) carry the forecast; the text shows it on
    one line, with CANNOT FINISH when the end comes first."""
    config = campaign_config()
    campaigns.sync_campaigns(config, T0)
    make_numbers(Campaign.get(Campaign.name == "c1"), 2)
    row = status.status(config, T0)[0]
    assert row["forecast"]["reason"].startswith("the campaign is READY")
    assert "forecast: none (the campaign is READY" in status.render([row])
    c = cfg(max_channels=1, type="scheduled", start="2026-11-01T00:00",
            end="2026-12-01T05:00", timezone="America/New_York")     # 10:00 UTC
    late = forecast.forecast(c, "running", Progress(due=fresh(720), observed=ANSWERED_10S), T0,
                             gap_s=0.0)
    line = status.render_forecast(late)
    assert line.startswith("forecast: finishes 2026-12-01 0") and "-05:00" in line
    assert "720 number(s) left" in line and "limited by max_channels" in line
    assert "CANNOT FINISH before its end: about %d number(s) left" % late["left_at_end"] in line
