from __future__ import annotations

import pytest

from sona.db import sqlite_url
from sona.errors import UnknownIdError
from sona.search.fusion import RankingConfig
from sona.search.ranking_store import RankingStore


def test_versions_history_and_variants(tmp_path):
    store = RankingStore(data_dir=tmp_path)
    version, cfg = store.current()
    assert version == 1 and cfg == RankingConfig()
    new = RankingConfig(vector=0.5, keyword=0.3, quality=0.1, freshness=0.1)
    assert store.put(new, note="tuned") == 2
    assert store.current() == (2, new)
    assert store.version(1)["weights"]["vector"] == 0.35
    with pytest.raises(UnknownIdError):
        store.version(99)
    with pytest.raises(ValueError, match="sum to 1"):
        store.put(RankingConfig(vector=0.9))
    store.put_variant("kw_heavy", RankingConfig(vector=0.2, keyword=0.5, quality=0.2,
                                                freshness=0.1), traffic_percentage=10)
    assert store.variant("kw_heavy")["traffic_percentage"] == 10
    assert store.active_variant("kw_heavy").keyword == 0.5
    store.put_variant("kw_heavy", RankingConfig(), is_active=False)
    assert store.active_variant("kw_heavy") is None
    assert [v["name"] for v in store.variants()] == ["kw_heavy"]
    store.delete_variant("kw_heavy")
    with pytest.raises(UnknownIdError):
        store.delete_variant("kw_heavy")
    with pytest.raises(ValueError, match="traffic_percentage"):
        store.put_variant("x", RankingConfig(), traffic_percentage=120)
    # persisted across instances
    assert RankingStore(sqlite_url(tmp_path / "search_ranking.db")).current()[0] == 2


def test_current_is_cached_and_a_write_invalidates_it(tmp_path):
    # issue 12: the ranking config is read on every search, so it is cached; a write
    # through the store is seen at once, another process's write once the cache expires
    url = sqlite_url(tmp_path / "search_ranking.db")
    store = RankingStore(url, cache_s=3600)
    other = RankingStore(url, cache_s=0)  # another worker: reads the database every time
    assert store.current()[0] == 1
    tuned = RankingConfig(vector=0.5, keyword=0.3, quality=0.1, freshness=0.1)
    assert other.put(tuned) == 2
    assert store.current()[0] == 1  # still the cached version (within cache_s)
    assert other.current() == (2, tuned)
    mine = RankingConfig(vector=0.4, keyword=0.4, quality=0.1, freshness=0.1)
    assert store.put(mine) == 3
    assert store.current() == (3, mine)  # own writes invalidate at once
