"""sona.loop without a server: viewer ids, hidden tastes, hit rates of served lists, the figure.

The loop over real servers is ``tests/serving/test_closed_loop.py`` (slow tier)."""

from __future__ import annotations

import numpy as np
import pytest

from sona.data.sources import MovieLens
from sona.loop import (
    LoopConfig,
    ServedLists,
    Viewing,
    WatchLog,
    compare_hits,
    hidden_tastes,
    make_viewers,
    plot_before_after,
)


def _lists(hits: list[float]) -> ServedLists:
    return ServedLists([], np.asarray(hits, np.float64), {"1"}, {})


def test_viewers_are_new_numeric_users_with_the_simulators_tastes(ml100k: MovieLens) -> None:
    viewers = make_viewers(ml100k, LoopConfig(viewers=5, first_id=5000, seed=3))
    assert viewers.user_ids == ["5000", "5001", "5002", "5003", "5004"]
    assert not set(viewers.user_ids) & {str(u) for u in ml100k.interactions.users.ids_array}
    again = make_viewers(ml100k, LoopConfig(viewers=5, first_id=5000, seed=3))
    assert [list(x) for x in viewers.liked] == [list(x) for x in again.liked]  # seeded
    assert viewers.affinity.shape == (5, viewers.item_genres.shape[1])


def test_hidden_tastes_leave_out_every_watched_title(ml100k: MovieLens) -> None:
    viewers = make_viewers(ml100k, LoopConfig(viewers=2, seed=1))
    liked = [str(i) for i in viewers.liked[0]]
    log = WatchLog([Viewing(viewers.user_ids[0], liked[0], 1.0, "e1", "playback_complete",
                            "s1"),
                    Viewing(viewers.user_ids[0], liked[1], 0.1, "e2", "playback_abandon", "s2"),
                    Viewing(viewers.user_ids[1], liked[2], 1.0, "e3", "playback_complete",
                            "s3")])
    tastes = hidden_tastes(viewers, log)
    assert tastes[0] == liked[2:]  # finished or abandoned: watched either way
    assert tastes[1] == [str(i) for i in viewers.liked[1] if str(i) != liked[2]]
    assert log.event_ids() == {"e1", "e2", "e3", "s1", "s2", "s3"}


def test_compare_hits_is_paired_and_drops_viewers_without_a_taste_left() -> None:
    before = _lists([0, 0, 1, 1, np.nan, 0])
    after = _lists([1, 1, 1, 1, 1, 0])
    result = compare_hits(after, before)
    assert result.n == 5 and result.mean_diff == pytest.approx(0.4)
    assert result.mean_a == pytest.approx(0.8) and result.mean_b == pytest.approx(0.4)
    assert result.ci_low <= 0.4 <= result.ci_high
    assert before.hit_rate == pytest.approx(0.4)


def test_the_figure_shows_both_settings_and_refuses_nothing() -> None:
    comparisons = {"live": compare_hits(_lists([1, 1, 0, 1]), _lists([1, 0, 0, 1])),
                   "replica": compare_hits(_lists([1, 0, 1, 1]), _lists([0, 0, 0, 1]))}
    fig = plot_before_after(comparisons)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["live", "replica"]
    assert len(left.patches) == 4  # before and after bars per setting
    assert any("+0.250" in t.get_text() for t in right.texts)
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_before_after({})
