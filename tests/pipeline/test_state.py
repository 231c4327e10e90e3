import numpy as np
import pytest

from sona.pipeline import UserState, preference
from sona.pipeline.state import FULL_VIEW_WEIGHT
from sona.profile import ViewingEvent, engagement_weight

VECTORS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]],
                   np.float32)
NOW = 1_700_000_000.0


def test_full_view_weight_is_an_unrated_complete_view() -> None:
    assert FULL_VIEW_WEIGHT == pytest.approx(0.55)
    assert FULL_VIEW_WEIGHT == pytest.approx(engagement_weight(ViewingEvent(1, NOW, 1.0)))


def test_training_items_weigh_a_full_view_against_events() -> None:
    rated = ViewingEvent(2, NOW, 1.0, rating=5)  # today, completed, rated 5: weight 0.7
    w_event = engagement_weight(rated)
    assert w_event == pytest.approx(0.7)
    pref = preference(np.array([0, 1]), [rated], np.array([2]), VECTORS, now=NOW)
    expected = np.array([FULL_VIEW_WEIGHT, FULL_VIEW_WEIGHT, w_event])
    np.testing.assert_allclose(pref, expected / np.linalg.norm(expected), atol=1e-6)
    assert pref.dtype == np.float32


def test_an_unrated_full_view_event_equals_a_training_item() -> None:
    event = ViewingEvent(1, NOW, 1.0)
    a = preference(np.array([0, 1]), [], np.empty(0, np.int64), VECTORS, now=NOW)
    b = preference(np.array([0]), [event], np.array([1]), VECTORS, now=NOW)
    np.testing.assert_allclose(a, b, atol=1e-7)
    np.testing.assert_allclose(a, np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6)


def test_unknown_items_are_skipped() -> None:
    events = [ViewingEvent("gone", NOW, 1.0, rating=5), ViewingEvent(3, NOW, 1.0)]
    pref = preference(np.empty(0, np.int64), events, np.array([-1, 3]), VECTORS, now=NOW)
    np.testing.assert_allclose(pref, VECTORS[3], atol=1e-6)
    only_unknown = preference(np.empty(0, np.int64), events[:1], np.array([-1]), VECTORS,
                              now=NOW)
    np.testing.assert_array_equal(only_unknown, np.zeros(3, np.float32))


def test_zeros_without_history() -> None:
    pref = preference(np.empty(0, np.int64), [], np.empty(0, np.int64), VECTORS, now=NOW)
    assert pref.shape == (3,) and pref.dtype == np.float32
    assert not pref.any()
    # an event below the completion threshold does not qualify either
    low = preference(np.empty(0, np.int64), [ViewingEvent(0, NOW, 0.05)], np.array([0]),
                     VECTORS, now=NOW)
    assert not low.any()


def test_is_cold_is_at_most_max_events() -> None:
    def state(count: int) -> UserState:
        return UserState("u", -1, np.empty(0, np.int64), np.empty(0, np.int64), count,
                         np.zeros(3, np.float32))

    assert state(5).is_cold(5) and state(0).is_cold(5)
    assert not state(6).is_cold(5)
