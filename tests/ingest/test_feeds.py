from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from sona.genres import map_genre
from sona.ingest.feed_render import render
from sona.ingest.feed_shapes import GENRE_LABELS, PROFILES, Listing
from sona.ingest.feeds import FEED_VERSION, FeedConfig, build_works, feeds_digest, generate_feeds
from sona.ingest.normalizers import normalize
from sona.ingest.records import RawRecord


def test_same_config_same_feeds(ml100k, feeds300):
    again = generate_feeds(ml100k.catalog, ml100k.interactions.frame, FeedConfig(n_movies=300))
    assert [r.model_dump() for r in again.records] == [r.model_dump() for r in feeds300.records]
    other = generate_feeds(ml100k.catalog, None, FeedConfig(n_movies=300, seed=7))
    assert [r.id for r in other.records] != [r.id for r in feeds300.records]


def test_digest_pins_the_registered_feeds(feeds300):
    # datasets/REGISTRY.md lists this digest; a generator change must bump FEED_VERSION
    assert FEED_VERSION == "1"
    assert feeds_digest(feeds300) == (
        "acc7f1566b32f8571214fa57f2a9ad172d10380bbd300bcaa3511e4cd9653b5a")


def test_truth_covers_every_record_and_every_work_is_offered(feeds300):
    assert set(feeds300.truth) == {r.id for r in feeds300.records}
    assert len(feeds300.records) == len({r.id for r in feeds300.records})
    assert set(feeds300.truth.values()) == set(feeds300.works) and len(feeds300.works) == 300
    assert set(feeds300.by_platform()) == set(PROFILES)


def test_movielens_duplicates_collapse_into_one_work(ml100k):
    works = build_works(ml100k.catalog, None, seed=42)
    assert len(works) == 1682 - 18
    assert works[246].item_ids == (246, 268)  # "Chasing Amy" (1997) is listed twice in ML-100K
    imdb = [w.imdb_id for w in works.values()]
    assert len(set(imdb)) == len(imdb) and all(re.fullmatch(r"tt\d{7}", i) for i in imdb)


def test_feeds_carry_the_quirks_resolution_must_survive(feeds300, records300):
    works = feeds300.works
    titles = [r.title for r in records300]
    assert any(t.endswith(", The") for t in titles)  # "Matrix, The" spelling kept
    assert any(re.search(r"[éàôüíçñ]", t) for t in titles)
    assert any(t.isupper() for t in titles)
    truth = [works[feeds300.truth[raw.id]] for raw in feeds300.records]
    off = sum(1 for w, r in zip(truth, records300, strict=True)
              if w.year and r.release_year and abs(w.year - r.release_year) == 1)
    assert 0.04 < off / len(records300) < 0.12
    bare = [raw for raw in feeds300.records if raw.platform == "prime_video"
            and str(raw.data["identifiers"].get("imdbId", "tt")).isdigit()]
    assert bare
    conflicting = sum(1 for w, r in zip(truth, records300, strict=True)
                      if r.external_ids.get("imdb_id") not in (None, w.imdb_id))
    assert conflicting >= 1
    per_platform = Counter((raw.platform, feeds300.truth[raw.id]) for raw in feeds300.records)
    assert any(n == 2 for n in per_platform.values())  # a re-listed title


def test_generated_records_all_normalise(feeds300, records300):
    assert len(records300) == len(feeds300.records)
    assert all(r.deep_links is not None for r in records300)


@pytest.mark.parametrize("platform", sorted(GENRE_LABELS))
def test_platform_labels_map_back_to_their_genre(platform):
    for genre, label in GENRE_LABELS[platform].items():
        assert genre in map_genre(label), (platform, label)


@pytest.mark.parametrize("platform", sorted(PROFILES))
def test_render_then_normalise_round_trips(platform):
    when = datetime(2026, 1, 2, tzinfo=UTC)
    listing = Listing(
        platform=platform, platform_content_id="12345678" if platform == "netflix" else "id-1",
        work_id=7, title="Matrix, The", year=1999, runtime_minutes=136, overview="Neo.",
        genres=["action", "sci_fi"], maturity="R", eidr_id="10.5240/AAAA-BBBB-CCCC-DDDD-EEEE-F",
        imdb_id="tt0133093", tmdb_id="603", regions=["GB", "US"], subscription=False,
        rental_price=3.99, purchase_price=14.99, currency="USD", available_from=when,
        available_until=None,
        tier=PROFILES[platform].tiers[0] if PROFILES[platform].tiers else None,
        is_original=False, qualities=["HD"], subtitles=["en"], user_rating=8.4, popularity=0.5,
        has_poster=True, has_backdrop=True, brand=None, fetched_at=when, views=30)
    rec = normalize(RawRecord(id="x", platform=platform, data=render(listing), fetched_at=when))
    assert rec.title == "Matrix, The" and rec.release_year == 1999
    assert {"action", "sci_fi"} <= set(rec.genres)
    assert rec.runtime_minutes == 136
    assert rec.availability.regions == ["GB", "US"]
    assert rec.images.poster_small or rec.images.poster_medium or rec.images.poster_large
    carried = {"netflix": {"imdb_id", "tmdb_id"}, "hulu": {"eidr_id", "imdb_id"},
               "youtube": {"imdb_id"}}.get(platform, {"eidr_id", "imdb_id", "tmdb_id"})
    full = {"eidr_id": "10.5240/AAAA-BBBB-CCCC-DDDD-EEEE-F", "imdb_id": "tt0133093",
            "tmdb_id": "603"}
    assert rec.external_ids == {k: v for k, v in full.items() if k in carried}


def test_bad_config_is_rejected(ml100k):
    with pytest.raises(ValueError, match="myspace"):
        generate_feeds(ml100k.catalog, None, FeedConfig(platforms=("myspace",)))
    with pytest.raises(ValueError, match="p_typo"):
        generate_feeds(ml100k.catalog, None, FeedConfig(p_typo=1.5))
