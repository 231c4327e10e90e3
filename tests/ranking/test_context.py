import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Catalog, Interactions
from sona.ranking.context import (
    Context,
    ContextStats,
    context_rerank,
    context_scores,
    device_scores,
    event_hour_weekday,
    mood_genres,
    time_window,
    viewing_with_genres,
)

MONDAY_9AM = 1_704_704_400.0  # 2024-01-08 09:00:00 UTC, a Monday


def _data():
    # item 10: 4 events at 9h; item 11: 2 events at 21h; item 12: 1 event at 9h
    rows = [(1, 10, 0), (2, 10, 0), (3, 10, 0), (4, 10, 0), (1, 11, 12), (2, 11, 12),
            (3, 12, 0)]
    frame = pd.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                          "rating": 4.0,
                          "timestamp": [MONDAY_9AM + r[2] * 3600 for r in rows]})
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": [10, 11, 12], "title": ["a", "b", "c"], "year": [1995, 1996, 1997],
        "genres": [("Comedy", "Children's"), ("Horror",), ("Drama",)],
        "runtime": [95, 25, np.nan]}))
    return Interactions.from_frame(frame), catalog


def test_hour_weekday_and_windows():
    hours, days = event_hour_weekday(np.array([MONDAY_9AM, MONDAY_9AM + 13 * 3600]))
    assert hours.tolist() == [9, 22] and days.tolist() == [0, 0]
    assert [time_window(h) for h in (0, 6, 12, 18, 23)] == [
        "night", "morning", "afternoon", "evening", "evening"]
    with pytest.raises(ValueError):
        time_window(24)


def test_mood_table_maps_to_canonical_genres():
    assert mood_genres("happy") == ["animation", "comedy", "family"]
    assert mood_genres("relaxed") == ["documentary"]  # nature -> documentary, lifestyle dropped
    assert mood_genres("curious") == ["documentary", "mystery", "sci_fi"]
    assert mood_genres("unknown mood") == ["comedy", "drama"]


def test_stats_and_time_rule_known_answer():
    data, catalog = _data()
    stats = ContextStats.from_interactions(data, catalog)
    i10, i11, i12 = data.items.numbers([10, 11, 12])
    np.testing.assert_allclose(stats.popularity[[i10, i11, i12]], [1.0, 0.5, 0.25])
    assert stats.hourly[i10, 9] == 1.0 and stats.hourly[i11, 21] == 1.0
    scores = context_scores(stats, Context(hour=9), min_popularity=0.3)
    # item 10: min(1, 0.6·1 + 0.4·1) = 1; item 11 has no morning event; item 12 pop 0.25 <= 0.3
    np.testing.assert_allclose(scores[[i10, i11, i12]], [1.0, 0.0, 0.0])
    evening = context_scores(stats, Context(hour=21, weekday=0), min_popularity=0.0)
    # item 11: 0.6·0.5 + 0.4·(0.6·1 + 0.4·1) = 0.7
    assert evening[i11] == pytest.approx(0.7)


def test_device_and_mood_rules():
    np.testing.assert_allclose(device_scores(np.array([95, 45, 25, np.nan]), "tv"),
                               [0.8, 0.7, np.nan, np.nan])
    np.testing.assert_allclose(device_scores(np.array([95, 45, 25]), "mobile"),
                               [np.nan, 0.7, 0.8])
    data, catalog = _data()
    stats = ContextStats.from_interactions(data, catalog)
    i10, i11, i12 = data.items.numbers([10, 11, 12])
    tv = context_scores(stats, Context(device="tv"), min_popularity=0.0)
    # item 10 runs 95 min: min(1, 0.5·1 + 0.5·0.8) = 0.9; item 11 (25 min) is not for tv;
    # item 12 has no runtime: neutral (0)
    np.testing.assert_allclose(tv[[i10, i11, i12]], [0.9, 0.0, 0.0])
    happy = context_scores(stats, Context(mood="happy"), min_popularity=0.0)
    # item 10 has comedy + family of the 3 requested: 0.5·1 + 0.5·2/3
    assert happy[i10] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert happy[i11] == 0.0


def test_context_rerank_mixes_relevance_and_context():
    cands = np.array([[0, 1, 2]])
    rel = np.array([[1.0, 0.5, 0.0]])
    ctx = np.array([0.0, 0.0, 1.0])
    idx, _ = context_rerank(cands, rel, ctx, 3, weight=0.0)
    assert idx.tolist() == [[0, 1, 2]]
    idx, mixed = context_rerank(cands, rel, ctx, 3, weight=0.6)
    # mixed: 0.4·[1, .5, 0] + 0.6·[0, 0, 1] = [0.4, 0.2, 0.6]
    assert idx.tolist() == [[2, 0, 1]]
    np.testing.assert_allclose(mixed[0], [0.6, 0.4, 0.2])


def test_time_of_day_window_without_an_hour():
    data, catalog = _data()
    stats = ContextStats.from_interactions(data, catalog)
    i10, i11, i12 = data.items.numbers([10, 11, 12])
    morning = context_scores(stats, Context(time_of_day="morning"), min_popularity=0.0)
    # the item's best hour in 6-12 stands for hourly[h]: items 10 and 12 peak at 9h;
    # item 10: min(1, 0.6·1 + 0.4·1); item 12: 0.6·0.25 + 0.4·1; item 11 only at 21h
    np.testing.assert_allclose(morning[[i10, i11, i12]], [1.0, 0.0, 0.55])
    evening = context_scores(stats, Context(time_of_day="evening"), min_popularity=0.0)
    np.testing.assert_allclose(evening[[i10, i11, i12]], [0.0, 0.7, 0.0])
    # with a weekday (Tuesday: no event), temporal = 0.6·1 + 0.4·0
    tuesday = context_scores(stats, Context(time_of_day="morning", weekday=1),
                             min_popularity=0.0)
    np.testing.assert_allclose(tuesday[[i10, i12]], [0.6 + 0.4 * 0.6, 0.15 + 0.4 * 0.6])
    # an hour takes precedence over the window
    np.testing.assert_array_equal(
        context_scores(stats, Context(hour=21, time_of_day="morning"), min_popularity=0.0),
        context_scores(stats, Context(hour=21), min_popularity=0.0))


def test_invalid_time_of_day_raises_naming_it():
    data, catalog = _data()
    stats = ContextStats.from_interactions(data, catalog)
    with pytest.raises(ValueError, match="'brunch'"):
        context_scores(stats, Context(time_of_day="brunch"))
    with pytest.raises(ValueError, match="weekday"):
        context_scores(stats, Context(weekday=7))


def test_weekday_alone():
    data, catalog = _data()
    stats = ContextStats.from_interactions(data, catalog)
    i10, i11, i12 = data.items.numbers([10, 11, 12])
    monday = context_scores(stats, Context(weekday=0), min_popularity=0.0)
    # every event is on a Monday: min(1, 0.6·pop + 0.4·1)
    np.testing.assert_allclose(monday[[i10, i11, i12]], [1.0, 0.7, 0.55])
    # the SPEC popularity floor still applies: item 12 has pop 0.25 <= 0.3
    floored = context_scores(stats, Context(weekday=0))
    np.testing.assert_allclose(floored[[i10, i11, i12]], [1.0, 0.7, 0.0])
    assert not context_scores(stats, Context(weekday=3), min_popularity=0.0).any()


def test_viewing_with_boosts_family_items():
    assert viewing_with_genres(("kids",)) == ["animation", "comedy", "family"]
    assert viewing_with_genres((" Kids ", "alone")) == viewing_with_genres(("kids",))
    assert viewing_with_genres(("alone",)) == []
    data, catalog = _data()
    stats = ContextStats.from_interactions(data, catalog)
    i10, i11, i12 = data.items.numbers([10, 11, 12])
    kids = context_scores(stats, Context(viewing_with=("kids",)), min_popularity=0.0)
    # item 10 (comedy, family) matches 2 of 3: 0.5·1 + 0.5·2/3; horror and drama match none
    np.testing.assert_allclose(kids[[i10, i11, i12]], [0.5 + 0.5 * 2 / 3, 0.0, 0.0])
    partner = context_scores(stats, Context(viewing_with=("partner",)), min_popularity=0.0)
    # partner: comedy, drama, romance; item 12 (drama, pop 0.25): 0.125 + 0.5/3
    np.testing.assert_allclose(partner[[i10, i11, i12]],
                               [0.5 + 0.5 / 3, 0.0, 0.125 + 0.5 / 3])
    # an unknown label adds no rule, alone or next to a known one
    assert not context_scores(stats, Context(viewing_with=("alone",)),
                              min_popularity=0.0).any()
    np.testing.assert_array_equal(
        context_scores(stats, Context(viewing_with=("kids", "alone")), min_popularity=0.0),
        kids)


def test_context_is_empty():
    assert Context().is_empty
    assert Context(viewing_with=(), mood="").is_empty
    for ctx in (Context(hour=0), Context(weekday=0), Context(device="tv"),
                Context(mood="happy"), Context(time_of_day="night"),
                Context(viewing_with=("kids",))):
        assert not ctx.is_empty, ctx
