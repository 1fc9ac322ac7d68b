"""The temporal rule: fixed length L, no NaN, pad placement, compositing, season fitting, persistence."""

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slgt2_cli.data.temporal import TemporalRule, day_of_year, fill_gaps, season_of
from slgt2_cli.errors import InputError

D0 = dt.date(2021, 1, 1)


@st.composite
def observations(draw):
    t = draw(st.integers(1, 30))
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    raw = draw(arrays(np.float32, (t, c, h, w), elements=st.floats(-40, 10, width=32)))
    holes = draw(arrays(np.bool_, (t, h, w)))
    raw[np.broadcast_to(holes[:, None], raw.shape)] = np.nan
    offsets = sorted(draw(st.lists(st.integers(0, 900), min_size=t, max_size=t)))
    return raw, [D0 + dt.timedelta(days=o) for o in offsets]


@settings(max_examples=60, deadline=None)
@given(observations(), st.integers(1, 24), st.sampled_from(["linear", "nearest"]))
def test_composite_output_has_length_l_and_no_nan(obs, length, fill):
    raw, dates = obs
    rule = TemporalRule.fit([dates], length=length, fill=fill)
    out = rule.apply(raw, dates)
    assert out.shape == (length,) + raw.shape[1:] and out.dtype == np.float32
    assert np.isfinite(out).all()
    lo, hi = np.nanmin(raw, initial=np.inf), np.nanmax(raw, initial=-np.inf)
    has_data = ~np.isnan(raw).all(axis=0)  # composites and interpolation stay within the observed range
    if has_data.any():
        assert out[:, has_data].min() >= lo - 1e-3 and out[:, has_data].max() <= hi + 1e-3


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3))
def test_pad_mode_places_frames_symmetrically(t, length, c):
    raw = np.arange(t * c * 2 * 3, dtype=np.float32).reshape(t, c, 2, 3) + 1
    fill = np.arange(c, dtype=np.float32) - 100
    out = TemporalRule(length=length, mode="pad").apply(raw, None, fill=fill)
    assert out.shape == (length, c, 2, 3) and np.isfinite(out).all()
    offset = (length - t) // 2
    for i in range(length):
        src = i - offset
        if 0 <= src < t:
            np.testing.assert_array_equal(out[i], raw[src])
        else:
            np.testing.assert_array_equal(out[i], np.broadcast_to(fill[:, None, None], (c, 2, 3)))


def test_pad_mode_examples():
    raw = np.ones((41, 2, 1, 1), np.float32) * np.arange(41, dtype=np.float32)[:, None, None, None]
    out = TemporalRule(length=48, mode="pad").apply(raw, None, fill=[0, 0])
    assert out[3, 0, 0, 0] == 0 and out[4, 0, 0, 0] == 1 and out[44, 0, 0, 0] == 0 and out[43, 0, 0, 0] == 40
    out = TemporalRule(length=16, mode="pad").apply(raw, None)  # crop: (16 - 41) // 2 = -13
    np.testing.assert_array_equal(out[:, 0, 0, 0], np.arange(13, 29) + 1 - 1)


def test_composite_means_observations_per_period_and_interpolates_gaps():
    rule = TemporalRule(length=4, mode="composite", season_start=0, season_days=40)  # 10-day periods
    dates = [D0 + dt.timedelta(days=d) for d in (1, 5, 25, 31, 39)]
    raw = np.array([2.0, 4.0, 7.0, np.nan, 9.0], np.float32).reshape(5, 1, 1, 1)
    out = rule.apply(raw, dates)[:, 0, 0, 0]
    np.testing.assert_allclose(out, [3.0, 5.0, 7.0, 9.0])  # period 1 empty -> linear between 3 and 7
    nearest = TemporalRule(length=4, season_start=0, season_days=40, fill="nearest").apply(raw, dates)
    assert nearest[1, 0, 0, 0] in (3.0, 7.0)


def test_pixel_without_observations_gets_the_fill_value():
    raw = np.full((3, 2, 1, 2), np.nan, np.float32)
    raw[:, :, 0, 1] = 1.0
    dates = [D0 + dt.timedelta(days=d) for d in (0, 10, 20)]
    out = TemporalRule.fit([dates], length=4).apply(raw, dates, fill=[-10.0, -20.0])
    np.testing.assert_array_equal(out[:, 0, 0, 0], -10.0)
    np.testing.assert_array_equal(out[:, 1, 0, 0], -20.0)
    np.testing.assert_array_equal(out[:, :, 0, 1], 1.0)


def test_fill_gaps_linear_between_and_constant_beyond():
    frames = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan], np.float32).reshape(6, 1)
    np.testing.assert_allclose(fill_gaps(frames, "linear", np.zeros(1))[:, 0], [1, 1, 2, 3, 4, 4])


def test_season_fitting_wraps_new_year_and_applies_by_day_of_year():
    dates = [dt.date(2020, 11, 1) + dt.timedelta(days=12 * i) for i in range(12)]  # Nov .. Mar
    rule = TemporalRule.fit([dates], length=8)
    assert rule.mode == "composite" and rule.season_days < 200
    assert day_of_year(dates[0]) - rule.season_start == 6  # the margin before the first date
    later = [d.replace(year=d.year + 3) for d in dates]  # another year maps to the same periods
    np.testing.assert_array_equal(rule.period_of(later), rule.period_of(dates))
    assert (rule.period_of(dates) >= 0).all()
    assert season_of(list(range(0, 365, 10))) == (0, 365)


def test_fit_chooses_pad_for_dateless_stacks_and_roundtrips():
    assert TemporalRule.fit([None, None], length=48).mode == "pad"
    rule = TemporalRule.fit([[dt.date(2021, 4, 1), dt.date(2021, 9, 1)]], length=16)
    assert TemporalRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(InputError):
        TemporalRule.from_dict({"mode": "zigzag"})
    with pytest.raises(InputError):
        TemporalRule.fit([None], mode="composite")


class _FakeStack:
    def __init__(self, dates, path="x.tif"):
        self.dates, self.path, self.num_dates = dates, path, len(dates or [0])


def test_check_rejects_unmappable_stacks():
    rule = TemporalRule.fit([[dt.date(2021, 4, 1), dt.date(2021, 6, 1)]], length=4, mode="composite")
    rule.check(_FakeStack([dt.date(2023, 5, 1)]))
    with pytest.raises(InputError, match="x.tif.*no dates"):
        rule.check(_FakeStack(None))
    with pytest.raises(InputError, match="season"):
        rule.check(_FakeStack([dt.date(2021, 12, 1)]))
    with pytest.raises(InputError, match="one date per frame"):
        rule.apply(np.zeros((2, 1, 1, 1), np.float32), None)
    TemporalRule(length=4, mode="pad").check(_FakeStack(None))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 364), min_size=1, max_size=40, unique=True), st.integers(1, 48))
def test_fitted_season_holds_every_training_date_and_periods_are_in_range(doys, length):
    """Every training date falls into a period 0..L-1 of the fitted rule, in date order within the season."""
    dates = [dt.date(2021, 1, 1) + dt.timedelta(days=d) for d in sorted(doys)]
    rule = TemporalRule.fit([dates], length=length)
    periods = rule.period_of(dates)
    assert ((periods >= 0) & (periods < length)).all()
    offsets = [(day_of_year(d) - rule.season_start) % 365 for d in dates]
    order = np.argsort(offsets, kind="stable")
    assert (np.diff(periods[order]) >= 0).all()
    rule.check(type("S", (), {"dates": dates, "path": None})())  # a stack with those dates is accepted
    assert TemporalRule.from_dict(rule.to_dict()) == rule


@settings(max_examples=40, deadline=None)
@given(observations(), st.integers(1, 24))
def test_composite_of_infinite_free_input_is_within_the_observed_range(obs, length):
    """Compositing averages and interpolates: each output lies between the channel's observed min and max."""
    raw, dates = obs
    rule = TemporalRule.fit([dates], length=length)
    if (rule.period_of(dates) < 0).all():
        return
    fill = np.zeros(raw.shape[1], np.float32)
    out = rule.apply(raw, dates, fill=fill)
    for c in range(raw.shape[1]):
        lo, hi = np.nanmin(np.append(raw[:, c], 0)), np.nanmax(np.append(raw[:, c], 0))
        assert (out[:, c] >= lo - 1e-3).all() and (out[:, c] <= hi + 1e-3).all()


def test_reference_mode_reflects_the_date_axis_as_the_reference_pipeline():
    """README of the reference pipeline fixture: 12 dates -> [2, 1, 0, 1, ..., 11, 10, 9]; Brandenburg 41 -> 48."""
    raw = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1).repeat(2, axis=1)
    rule = TemporalRule(length=16, mode="reference")
    out = rule.apply(raw, None, fill=[5.0, 5.0])
    assert out[:, 0, 0, 0].tolist() == [2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 10, 9]
    b = TemporalRule(length=48, mode="reference").apply(np.arange(41.0).reshape(41, 1, 1, 1), None)
    assert b[:4, 0, 0, 0].tolist() == [3, 2, 1, 0] and b[-4:, 0, 0, 0].tolist() == [39, 38, 37, 36]
    # longer series are cropped like the reference network: -((L - T) // 2) frames off the front
    assert rule.apply(np.arange(19.0).reshape(19, 1, 1, 1), None)[:, 0, 0, 0].tolist() == list(range(2, 18))
    # no-data observations (NaN after reading) enter as the stored zeros, not as the mean
    gap = raw.copy()
    gap[3] = np.nan
    assert rule.apply(gap, None, fill=[5.0, 5.0])[5, 0, 0, 0] == 0.0  # date 3 sits at 3 + 2
    assert TemporalRule.from_dict(rule.to_dict()) == rule
    assert TemporalRule.fit([None], length=16, mode="reference") == rule
