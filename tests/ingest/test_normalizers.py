"""Each platform normaliser on a hand-written raw record in that platform's own shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sona.errors import DataError
from sona.ingest.normalizers import NORMALIZERS, get_normalizer, normalize
from sona.ingest.records import RawRecord

FETCHED = datetime(2026, 11, 1, tzinfo=UTC)


def d(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "netflix": ({
        "netflixId": 60000724, "type": "movie", "title": "The Matrix",
        "synopsis": "A hacker learns the truth.", "releaseYear": 1999, "runtime": 8160,
        "genres": ["Action & Adventure", "Sci-Fi"], "maturity": {"rating": "R", "board": "MPAA"},
        "original": False, "ids": {"imdb": "tt0133093", "tmdb": 603},
        "boxArt": {"342x192": "https://i/s.jpg", "665x375": "https://i/m.jpg"},
        "storyArt": "https://i/b.jpg", "countries": ["US", "ca"], "availableFrom": "2025-01-01",
        "expiresOn": "2026-03-31", "subtitles": ["en", "fr"], "maxQuality": "UHD",
    }, {
        "platform_content_id": "60000724", "title": "The Matrix", "release_year": 1999,
        "runtime_minutes": 136, "genres": ["action", "adventure", "sci_fi"], "rating": "R",
        "external_ids": {"imdb_id": "tt0133093", "tmdb_id": "603"},
        "availability.regions": ["US", "CA"], "availability.subscription_required": True,
        "availability.available_from": d("2025-01-01"),
        "availability.available_until": d("2026-03-31"),
        "availability.video_qualities": ["HD", "UHD"], "images.poster_medium": "https://i/m.jpg",
        "images.backdrop": "https://i/b.jpg",
        "deep_links.mobile": "nflx://www.netflix.com/title/60000724",
        "deep_links.web": "https://www.netflix.com/title/60000724",
        "deep_links.tv": "netflix://title/60000724",
    }),
    "prime_video": ({
        "asin": "B00FZ0JDI8", "titleText": "Matrix, The", "synopsis": None,
        "releaseDate": "1999-03-31", "runtimeMinutes": 136,
        "genreLabels": "Science Fiction, Action, Mystery and Thrillers", "ageRating": "16+",
        "identifiers": {"eidr": "10.5240/B1A6-3A4B-0F4A-5E3B-6C22-9", "imdbId": "133093"},
        "customerReviews": {"averageStars": 4.6, "count": 1200},
        "offers": [{"offerType": "SUBSCRIPTION", "benefit": "PRIME", "quality": "HD"},
                   {"offerType": "TVOD_RENTAL", "quality": "UHD",
                    "price": {"amount": 3.99, "currencyCode": "USD"}},
                   {"offerType": "TVOD_PURCHASE", "quality": "HD",
                    "price": {"amount": "14.99", "currencyCode": "USD"}}],
        "territories": ["US"], "window": {"start": "2024-05-01T00:00:00Z", "end": None},
        "images": {"packshot": "https://i/p.jpg"},
    }, {
        "title": "Matrix, The", "overview": None, "release_year": 1999,
        "genres": ["action", "mystery", "sci_fi", "thriller"], "rating": "R", "user_rating": 9.2,
        "external_ids": {"eidr_id": "10.5240/B1A6-3A4B-0F4A-5E3B-6C22-9", "imdb_id": "tt0133093"},
        "availability.subscription_required": True, "availability.rental_price": 3.99,
        "availability.purchase_price": 14.99, "availability.currency": "USD",
        "availability.tier": "prime", "availability.video_qualities": ["HD", "UHD"],
        "availability.available_until": None, "images.poster_large": "https://i/p.jpg",
        "deep_links.web": "https://www.amazon.com/gp/video/detail/B00FZ0JDI8",
    }),
    "disney_plus": ({
        "contentId": "5b8c3b42-8f2d-4c1d-9b8e-0d6f1c6a7e11", "programType": "movie",
        "text": {"title": {"full": "Toy Story"}, "description": {"medium": "Toys come alive."}},
        "releases": [{"releaseType": "original", "releaseYear": 1995}],
        "mediaMetadata": {"runtimeMillis": 4_860_000, "videoQualities": ["HD", "UHD"]},
        "typedGenres": [{"name": "Animation"}, {"name": "Comedy"}],
        "ratings": [{"system": "MPAA", "value": "G"}], "externalIds": {"tmdb": "862"},
        "image": {"tile": {"0.71": {"url": "https://i/t.jpg"}}}, "brand": "Pixar",
        "regions": ["US", "GB"],
        "availability": {"appearsFrom": "2019-11-12T00:00:00Z", "expiresAt": None},
    }, {
        "title": "Toy Story", "release_year": 1995, "runtime_minutes": 81,
        "genres": ["animation", "comedy", "family"], "rating": "G",
        "external_ids": {"tmdb_id": "862"}, "images.poster_medium": "https://i/t.jpg",
        "availability.regions": ["US", "GB"],
        "deep_links.web": "https://www.disneyplus.com/movies/toy-story/"
                          "5b8c3b42-8f2d-4c1d-9b8e-0d6f1c6a7e11",
    }),
    "hulu": ({
        "id": "hulu-1", "type": "movie", "name": "Fargo", "description": "A botched kidnapping.",
        "premiere_date": "1996-03-08T00:00:00Z", "duration_sec": 5880,
        "genre_names": ["Crime", "Drama", "Thriller"], "rating": {"code": "R"},
        "tiers": ["ad-free", "live-tv"], "hulu_original": False,
        "external_ids": {"imdb_id": "116282"},
        "artwork": {"program.tile": {"path": "https://i/h.jpg"}},
        "availability": {"start_date": "2025-06-01T00:00:00Z", "end_date": "2025-12-31T00:00:00Z",
                         "locations": ["US"]},
    }, {
        "title": "Fargo", "release_year": 1996, "runtime_minutes": 98,
        "genres": ["crime", "drama", "thriller"], "external_ids": {"imdb_id": "tt0116282"},
        "availability.tier": "ad_free", "availability.available_until": d("2025-12-31"),
        "deep_links.mobile": "hulu://watch/hulu-1",
    }),
    "apple_tv_plus": ({
        "id": "umc.cmc.3s4mgg2y7h95fks9gnc4pw13m", "type": "movies",
        "attributes": {"name": "Amélie", "description": {"standard": "A shy waitress."},
                       "releaseDate": "2001-04-25", "durationInMillis": 7_320_000,
                       "genreNames": ["Comedy", "Romance"], "contentRating": "r",
                       "isAppleOriginal": False,
                       "artwork": {"url": "https://i/{w}x{h}bb.jpg", "width": 2000, "height": 3000},
                       "externalIds": {"imdb": "tt0211915"}},
        "offers": [{"kind": "rent", "price": 3.99, "currencyCode": "EUR", "variant": "HD"},
                   {"kind": "buy", "price": 9.99, "currencyCode": "EUR", "variant": "4K"}],
        "storefronts": ["fr", "de"], "availability": {"from": "2020-01-01T00:00:00Z"},
    }, {
        "title": "Amélie", "release_year": 2001, "runtime_minutes": 122,
        "genres": ["comedy", "romance"], "rating": "R",
        "availability.subscription_required": False, "availability.rental_price": 3.99,
        "availability.purchase_price": 9.99, "availability.currency": "EUR",
        "availability.regions": ["FR", "DE"], "availability.video_qualities": ["HD", "UHD"],
        "images.poster_small": "https://i/342x513bb.jpg",
        "images.poster_large": "https://i/2000x3000bb.jpg",
        "deep_links.web": "https://tv.apple.com/movie/amelie/umc.cmc.3s4mgg2y7h95fks9gnc4pw13m",
    }),
    "hbo_max": ({
        "urn": "urn:hbo:feature:GXkRjxwjR68PDwwEAABKJ", "titles": {"full": "Casablanca"},
        "summaries": {"full": "Of all the gin joints."}, "releaseYear": 1942,
        "runtimeSeconds": 6120, "genres": ["Drama", "Action/Adventure"], "ratingCode": "PG",
        "availableTiers": ["AD_SUPPORTED", "AD_FREE"], "maxOriginal": False,
        "references": {"imdb": "tt0034583"},
        "images": [{"role": "poster", "url": "https://i/c.jpg"}], "territories": ["US"],
        "window": {"start": "2023-05-23T00:00:00Z", "end": None},
    }, {
        "title": "Casablanca", "release_year": 1942, "runtime_minutes": 102,
        "genres": ["action", "adventure", "drama"], "rating": "PG",
        "availability.tier": "ad_supported", "images.poster_large": "https://i/c.jpg",
        "deep_links.web": "https://play.max.com/movie/urn:hbo:feature:GXkRjxwjR68PDwwEAABKJ",
    }),
    "peacock": ({
        "id": "GMO_00000000261", "type": "ASSET/PROGRAMME",
        "attributes": {"title": "Jaws", "synopsisLong": "A great white shark.", "year": 1975,
                       "durationSeconds": 7440,
                       "genres": [{"title": "Thriller"}, {"title": "Horror"}],
                       "classification": ["PG"], "peacockOriginal": False, "tier": "Free",
                       "videoFormats": ["HD"]},
        "identifiers": {"eidr": "10.5240/8A35-3A7B-B6D7-EB30-3FE1-8"},
        "images": [{"type": "landscape", "url": "https://i/j.jpg"}], "territories": ["US"],
        "offerWindow": {"startTime": 1_735_689_600_000, "endTime": None},
    }, {
        "title": "Jaws", "release_year": 1975, "runtime_minutes": 124,
        "genres": ["horror", "thriller"], "availability.subscription_required": False,
        "availability.tier": "free", "availability.available_from": d("2025-01-01"),
        "images.backdrop": "https://i/j.jpg", "deep_links.tv": "peacocktv://asset/GMO_00000000261",
    }),
    "paramount_plus": ({
        "contentId": "wQH9yE_y_Dt1ekDWm6yA6ICYO3ElMDzU", "title": "STAR TREK: FIRST CONTACT",
        "shortDescription": "The Borg travel back in time.", "airDate": "11/22/1996",
        "duration": "1h 51m", "genre": "Sci-Fi", "subGenres": ["Action", "Star Trek"],
        "tier": "PREMIUM", "isParamountOriginal": False, "regionalRatings": {"US": "PG-13"},
        "ids": {"imdb": "tt0117731", "tmdb": "199"}, "thumbnails": {"hero": "https://i/st.jpg"},
        "availableRegions": ["US", "CA"], "startDate": "2025-02-01T00:00:00Z", "endDate": None,
    }, {
        "title": "STAR TREK: FIRST CONTACT", "release_year": 1996, "runtime_minutes": 111,
        "genres": ["action", "sci_fi"], "rating": "PG13", "availability.tier": "premium",
        "external_ids": {"imdb_id": "tt0117731", "tmdb_id": "199"},
    }),
    "youtube": ({
        "kind": "youtube#video", "id": "dQw4w9WgXcQ",
        "snippet": {"title": "Groundhog Day (1993) | Full Movie", "description": "Again.",
                    "publishedAt": "2021-02-02T08:00:00Z",
                    "tags": ["comedy", "romance", "full movie"],
                    "thumbnails": {"high": {"url": "https://i/g.jpg"}}, "categoryId": "30"},
        "contentDetails": {"duration": "PT1H41M", "regionRestriction": {"allowed": ["US"]},
                           "definition": "hd"},
        "statistics": {"viewCount": "10000000"},
        "offers": [{"type": "rent", "priceMicros": 3990000, "currency": "USD"},
                   {"type": "buy", "priceMicros": 12990000, "currency": "USD"}],
    }, {
        "title": "Groundhog Day", "release_year": 1993, "runtime_minutes": 101,
        "genres": ["comedy", "romance"], "availability.rental_price": 3.99,
        "availability.purchase_price": 12.99, "availability.subscription_required": False,
        "popularity": 0.875, "images.poster_large": "https://i/g.jpg",
        "deep_links.web": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    }),
}


def _lookup(dump: dict[str, Any], dotted: str) -> Any:
    node: Any = dump
    for part in dotted.split("."):
        node = node[part]
    return node


def test_every_platform_has_a_sample_and_a_normaliser():
    assert set(SAMPLES) == set(NORMALIZERS)
    assert len(NORMALIZERS) == 9


@pytest.mark.parametrize("platform", sorted(SAMPLES))
def test_normaliser_reads_its_raw_shape(platform):
    raw, expected = SAMPLES[platform]
    record = normalize(RawRecord(id=f"{platform}:x", platform=platform, data=raw,
                                 fetched_at=FETCHED))
    dump = record.model_dump()
    assert record.platform_id == platform and record.updated_at == FETCHED
    for key, value in expected.items():
        assert _lookup(dump, key) == value, key
    assert record.deep_links is not None
    assert record.offers()[0].platform == platform


def test_offers_become_catalog_availability():
    raw, _ = SAMPLES["prime_video"]
    rec = normalize(RawRecord(id="p", platform="prime_video", data=raw, fetched_at=FETCHED))
    kinds = [(o.availability_type, o.price_cents) for o in rec.offers()]
    assert kinds == [("subscription", None), ("rental", 399), ("purchase", 1499)]
    assert rec.offers()[1].deep_link_url == "aiv://aiv/detail?asin=B00FZ0JDI8"


@pytest.mark.parametrize(("platform", "mutate", "field"), [
    ("netflix", lambda d: d.pop("title"), "title"),
    ("prime_video", lambda d: d["offers"].append({"offerType": "TVOD_RENTAL"}),
     "offers.3.price.amount"),
    ("hulu", lambda d: d.update(tiers=["premium"]), "tiers"),
    ("paramount_plus", lambda d: d.update(airDate="1996-11-22"), "airDate"),
    ("youtube", lambda d: d["contentDetails"].update(duration="1h41m"), "contentDetails.duration"),
    ("peacock", lambda d: d["attributes"].update(tier="Gold"), "attributes.tier"),
])
def test_malformed_records_name_platform_record_and_field(platform, mutate, field):
    import copy

    raw = copy.deepcopy(SAMPLES[platform][0])
    mutate(raw)
    with pytest.raises(DataError) as info:
        normalize(RawRecord(id="bad-1", platform=platform, data=raw, fetched_at=FETCHED))
    assert info.value.column == field
    assert platform in str(info.value) and "bad-1" in str(info.value)


def test_unknown_platform_and_wrong_normaliser():
    with pytest.raises(DataError, match="crave"):
        get_normalizer("crave")
    raw = RawRecord(id="n", platform="netflix", data=SAMPLES["netflix"][0], fetched_at=FETCHED)
    with pytest.raises(DataError, match="hulu normaliser got a netflix record"):
        NORMALIZERS["hulu"].normalize(raw)
    with pytest.raises(ValueError, match="unknown platform"):
        RawRecord(id="x", platform="myspace", data={}, fetched_at=FETCHED)
