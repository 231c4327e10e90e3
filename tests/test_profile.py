"""SPEC §2.1 preference vector, engagement weights, decay, affinities and the profile store."""

from __future__ import annotations

import numpy as np
import pytest

from sona.profile import (
    ProfileStore,
    UserProfile,
    ViewingEvent,
    decay_weight,
    engagement_weight,
    preference_vector,
    update_genre_affinities,
)

DAY = 86_400.0
NOW = 1_700_000_000.0


@pytest.mark.parametrize(("event", "expected"), [
    # c = 0.5 + 0.7/1.4 = 1.0 -> 0.4 + 0.15 = 0.55
    (ViewingEvent(1, NOW, 1.0), 0.55),
    # rated 5: 0.4 + 0.3 = 0.7; rewatch +0.2 = 0.9
    (ViewingEvent(1, NOW, 1.0, rating=5, is_rewatch=True), 0.9),
    # c = 0.5 at completion 0.3: 0.2 + 0.075 = 0.275
    (ViewingEvent(1, NOW, 0.3), 0.275),
    # rated 1: 0.4 + 0 = 0.4; dismissed -0.5 -> clamped to 0
    (ViewingEvent(1, NOW, 1.0, rating=1, dismissed=True), 0.0),
    # everything on: 0.4 + 0.3 + 0.2 = 0.9 (not above 1)
    (ViewingEvent(1, NOW, 1.0, rating=5, is_rewatch=True), 0.9),
])
def test_engagement_weight_known_answers(event: ViewingEvent, expected: float) -> None:
    assert engagement_weight(event) == pytest.approx(expected)


def test_engagement_label_ignores_dismissal() -> None:
    ev = ViewingEvent(1, NOW, 1.0, rating=3, dismissed=True)
    assert engagement_weight(ev, include_dismissal=False) == pytest.approx(0.4 + 0.15)
    assert engagement_weight(ev) == pytest.approx(0.05)


def test_decay_uses_whole_days() -> None:
    assert decay_weight(NOW, NOW) == 1.0
    assert decay_weight(NOW - 30 * DAY, NOW) == pytest.approx(0.95)
    # 59.9 days is 59 whole days
    assert decay_weight(NOW - 59.9 * DAY, NOW) == pytest.approx(0.95 ** (59 / 30))
    assert decay_weight(NOW + 5 * DAY, NOW) == 1.0  # future events count as today


def test_preference_vector_is_weighted_normalised_mean() -> None:
    vectors = np.eye(3, dtype=np.float32)
    events = [ViewingEvent("a", NOW, 1.0),  # w = 0.55
              ViewingEvent("b", NOW - 30 * DAY, 1.0, rating=5),  # 0.7 * 0.95
              ViewingEvent("c", NOW, 0.1)]  # below 0.3: ignored
    vec = preference_vector(events, [0, 1, 2], vectors, now=NOW)
    expected = np.array([0.55, 0.7 * 0.95, 0.0])
    np.testing.assert_allclose(vec, expected / np.linalg.norm(expected), atol=1e-6)
    assert np.linalg.norm(vec) == pytest.approx(1.0)


def test_preference_vector_zero_without_qualifying_events() -> None:
    vectors = np.eye(2, dtype=np.float32)
    assert not preference_vector([ViewingEvent(1, NOW, 0.2)], [0], vectors, now=NOW).any()
    dismissed = ViewingEvent(1, NOW, 0.5, rating=1, dismissed=True)
    assert not preference_vector([dismissed], [0], vectors, now=NOW).any()
    assert not preference_vector([ViewingEvent(1, NOW, 1.0)], [-1], vectors, now=NOW).any()
    with pytest.raises(ValueError, match="1 events but 2 item rows"):
        preference_vector([ViewingEvent(1, NOW, 1.0)], [0, 1], vectors, now=NOW)


def test_genre_affinity_online_update() -> None:
    events = [ViewingEvent(1, NOW, 1.0), ViewingEvent(2, NOW, 0.1)]
    out = update_genre_affinities({"drama": 0.2}, events, [["drama", "comedy"], ["horror"]])
    assert out["drama"] == pytest.approx(0.9 * 0.2 + 0.1 * 0.55)
    assert out["comedy"] == pytest.approx(0.9 * 0.5 + 0.1 * 0.55)
    assert "horror" not in out  # completion below 0.3


def test_profile_store_round_trip(tmp_path) -> None:
    store = ProfileStore(f"sqlite:///{tmp_path / 'p.db'}")
    assert store.get("u1") is None
    n = store.add_events("u1", [ViewingEvent(5, NOW, 0.9, rating=4), ViewingEvent("x", NOW, 0.5)])
    assert n == 2 and store.event_count("u1") == 2 and store.event_count("u2") == 0
    events = store.events("u1")
    assert [e.content_id for e in events] == ["5", "x"]
    assert events[0].rating == 4 and events[1].rating is None
    assert [e.content_id for e in store.events("u1", limit=1)] == ["x"]
    vec = np.array([0.6, 0.8], np.float32)
    store.save(UserProfile("u1", vec, {"drama": 0.7}, ("comedy",), 2, NOW))
    got = store.get("u1")
    assert got is not None
    np.testing.assert_array_equal(got.preference_vector, vec)
    assert got.genre_affinities == {"drama": 0.7} and got.signup_genres == ("comedy",)
    updated = store.set_signup_genres("u1", ["horror"], dim=2)
    assert updated.signup_genres == ("horror",)
    assert store.get("u1").genre_affinities == {"drama": 0.7}  # type: ignore[union-attr]


# --- more hand-computed cases (model zoo, issue 3) ---------------------------------------

@pytest.mark.parametrize(("event", "expected"), [
    # c = 0.5 + 0.35/1.4 = 0.75; 0.4·0.75 + 0.3·(3-1)/4 + 0.2 (rewatch) = 0.65
    (ViewingEvent(1, NOW, 0.65, rating=3, is_rewatch=True), 0.65),
    # c = 0.5 + 1.7/1.4 = 1.714...; 0.686 + 0.3 + 0.2 = 1.186 -> clamped to 1
    (ViewingEvent(1, NOW, 2.0, rating=5, is_rewatch=True), 1.0),
    # unrated, rewatch, dismissed at c = 1: 0.4 + 0.15 + 0.2 - 0.5 = 0.25
    (ViewingEvent(1, NOW, 1.0, is_rewatch=True, dismissed=True), 0.25),
])
def test_engagement_weight_mid_completion_and_clamps(event: ViewingEvent,
                                                     expected: float) -> None:
    assert engagement_weight(event) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("days_ago", "expected"), [
    (60.0, 0.95 ** 2),
    (45.9, 0.95 ** 1.5),  # 45 whole days
    (29.99, 0.95 ** (29 / 30)),  # 29 whole days: not yet one full period
    (0.5, 1.0),  # same day
])
def test_decay_whole_days_more_cases(days_ago: float, expected: float) -> None:
    assert decay_weight(NOW - days_ago * DAY, NOW) == pytest.approx(expected, abs=1e-12)


def test_decay_follows_profile_config() -> None:
    from sona.profile import ProfileConfig

    config = ProfileConfig(decay_base=0.5, decay_period_days=10.0)
    assert decay_weight(NOW - 20 * DAY, NOW, config) == pytest.approx(0.25)


def test_preference_vector_mixes_overlapping_vectors() -> None:
    s = 1 / np.sqrt(2)
    vectors = np.array([[s, s], [1.0, 0.0]], dtype=np.float32)
    events = [ViewingEvent("a", NOW, 1.0, rating=1),  # w = 0.4
              ViewingEvent("b", NOW - 45.5 * DAY, 1.0, rating=5)]  # 0.7 · 0.95^(45/30)
    vec = preference_vector(events, [0, 1], vectors, now=NOW)
    raw = 0.4 * np.array([s, s]) + 0.7 * 0.95 ** 1.5 * np.array([1.0, 0.0])
    np.testing.assert_allclose(vec, raw / np.linalg.norm(raw), atol=1e-6)
    assert vec.dtype == np.float32


def test_completion_exactly_at_threshold_counts() -> None:
    vectors = np.eye(2, dtype=np.float32)
    vec = preference_vector([ViewingEvent(1, NOW, 0.3)], [1], vectors, now=NOW)
    np.testing.assert_allclose(vec, [0.0, 1.0], atol=1e-7)


def test_preference_vector_of_no_events_is_zero_of_the_item_dim() -> None:
    vec = preference_vector([], [], np.ones((3, 384), dtype=np.float32), now=NOW)
    assert vec.shape == (384,) and vec.dtype == np.float32 and not vec.any()


def test_vectorised_weights_match_the_scalar_formula() -> None:
    from sona.profile import event_weights

    rng = np.random.default_rng(0)
    events = [ViewingEvent(i, NOW - float(rng.integers(0, 400)) * DAY, float(rng.random()),
                           None if rng.random() < 0.4 else int(rng.integers(1, 6)),
                           bool(rng.random() < 0.3), bool(rng.random() < 0.2))
              for i in range(300)]
    expected = [decay_weight(e.timestamp, NOW) * engagement_weight(e)
                if e.completion_rate >= 0.3 else 0.0 for e in events]
    np.testing.assert_allclose(event_weights(events, now=NOW), expected, atol=1e-12)


def test_events_imply_a_profile_row(tmp_path) -> None:
    store = ProfileStore(f"sqlite:///{tmp_path / 'p.db'}")
    store.add_events("u9", [ViewingEvent(1, NOW, 0.9)])
    row = store.get("u9")
    assert row is not None and row.interaction_count == 1 and row.preference_vector.size == 0
