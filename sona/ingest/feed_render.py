"""Writes a :class:`~sona.ingest.feed_shapes.Listing` in each platform's raw JSON shape.

The shapes follow the public APIs the platforms' partner feeds resemble (field names,
nesting, units and date formats differ on purpose); the matching parsers are in
:mod:`sona.ingest.normalizers`. Every ``render_<platform>`` returns plain JSON types.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sona.ingest.feed_shapes import GENRE_LABELS, Listing

_US_RATING = {"PG13": "PG-13", "NC17": "NC-17", "TVY": "TV-Y", "TVY7": "TV-Y7", "TVG": "TV-G",
              "TVPG": "TV-PG", "TV14": "TV-14", "TVMA": "TV-MA"}
_AGE_RATING = {"G": "ALL", "PG": "7+", "PG13": "13+", "R": "16+", "NC17": "18+", "NR": "NR"}
_TIERS = {
    "hulu": ("ad_supported", "ad_free", "live_tv"),
    "hbo_max": ("ad_supported", "ad_free"),
}


def _us(code: str) -> str:
    return _US_RATING.get(code, code)


def _labels(x: Listing) -> list[str]:
    out: list[str] = []
    for g in x.genres:
        label = GENRE_LABELS[x.platform][g]
        if label not in out:
            out.append(label)
    return out


def _img(x: Listing, kind: str) -> str | None:
    ok = x.has_poster if kind.startswith("poster") else x.has_backdrop
    host = x.platform.replace("_", "")
    return f"https://img.{host}.example/{x.platform_content_id}/{kind}.jpg" if ok else None


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def _date(x: Listing) -> str | None:
    if x.year is None:
        return None
    return f"{x.year}-{x.work_id % 12 + 1:02d}-{x.work_id % 28 + 1:02d}"


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _tiers_from(x: Listing) -> list[str]:
    order = _TIERS[x.platform]
    return list(order[order.index(x.tier):]) if x.tier in order else list(order)


def render_netflix(x: Listing) -> dict[str, Any]:
    labels = _labels(x) + (["Netflix Originals"] if x.is_original else [])
    return {
        "netflixId": int(x.platform_content_id), "type": "movie", "title": x.title,
        "synopsis": x.overview, "releaseYear": x.year, "runtime": x.runtime_minutes * 60,
        "genres": labels, "maturity": {"rating": _us(x.maturity), "board": "MPAA"},
        "original": x.is_original,
        "ids": _drop_none({"imdb": x.imdb_id, "tmdb": x.tmdb_id}),
        "boxArt": _drop_none({f"{w}x{h}": _img(x, f"poster_{w}") for w, h in
                              ((342, 192), (665, 375), (1280, 720))}),
        "storyArt": _img(x, "backdrop"), "countries": x.regions,
        "availableFrom": x.available_from.date().isoformat(),
        "expiresOn": x.available_until.date().isoformat() if x.available_until else None,
        "audio": ["en"], "subtitles": x.subtitles, "maxQuality": x.qualities[-1],
    }


def render_prime_video(x: Listing) -> dict[str, Any]:
    offers: list[dict[str, Any]] = []
    if x.subscription:
        offers.append({"offerType": "SUBSCRIPTION", "benefit": "PRIME", "quality": "HD"})
    for kind, price in (("TVOD_RENTAL", x.rental_price), ("TVOD_PURCHASE", x.purchase_price)):
        if price is not None:
            offers.append({"offerType": kind, "quality": "HD",
                           "price": {"amount": price, "currencyCode": x.currency}})
    return {
        "asin": x.platform_content_id, "titleText": x.title, "synopsis": x.overview,
        "releaseDate": _date(x), "runtimeMinutes": x.runtime_minutes,
        "genreLabels": ", ".join(_labels(x)), "ageRating": _AGE_RATING[x.maturity],
        "identifiers": _drop_none({"eidr": x.eidr_id, "imdbId": x.imdb_id, "tmdbId": x.tmdb_id}),
        "customerReviews": None if x.user_rating is None else {
            "averageStars": round(x.user_rating / 2, 1), "count": 10 + x.views % 5000},
        "offers": offers, "territories": x.regions,
        "window": {"start": _iso(x.available_from), "end": _iso(x.available_until)},
        "images": _drop_none({"packshot": _img(x, "poster_large"), "hero": _img(x, "backdrop")}),
        "subtitleLanguages": x.subtitles,
    }


def render_disney_plus(x: Listing) -> dict[str, Any]:
    return {
        "contentId": x.platform_content_id, "programType": "movie",
        "text": {"title": {"full": x.title}, "description": {"medium": x.overview}},
        "releases": [] if x.year is None else [{"releaseType": "original", "releaseYear": x.year}],
        "mediaMetadata": {"runtimeMillis": x.runtime_minutes * 60_000,
                          "videoQualities": x.qualities},
        "typedGenres": [{"name": n} for n in _labels(x)],
        "ratings": [{"system": "MPAA", "value": _us(x.maturity)}],
        "externalIds": _drop_none({"eidr": x.eidr_id, "imdb": x.imdb_id, "tmdb": x.tmdb_id}),
        "image": _drop_none({
            "tile": {"0.71": {"url": _img(x, "poster_medium")}} if x.has_poster else None,
            "background": {"1.78": {"url": _img(x, "backdrop")}} if x.has_backdrop else None}),
        "brand": x.brand, "regions": x.regions,
        "availability": {"appearsFrom": _iso(x.available_from),
                         "expiresAt": _iso(x.available_until)},
    }


def render_hulu(x: Listing) -> dict[str, Any]:
    return {
        "id": x.platform_content_id, "type": "movie", "name": x.title,
        "description": x.overview,
        "premiere_date": None if x.year is None else f"{_date(x)}T00:00:00Z",
        "duration_sec": x.runtime_minutes * 60, "genre_names": _labels(x),
        "rating": {"code": _us(x.maturity)},
        "tiers": [t.replace("_", "-") for t in _tiers_from(x)], "hulu_original": x.is_original,
        "external_ids": _drop_none({"eidr_id": x.eidr_id, "imdb_id": x.imdb_id}),
        "artwork": _drop_none({
            "program.tile": {"path": _img(x, "poster_medium")} if x.has_poster else None,
            "detail.horizontal.hero": {"path": _img(x, "backdrop")} if x.has_backdrop else None}),
        "availability": {"start_date": _iso(x.available_from), "end_date": _iso(x.available_until),
                         "locations": x.regions},
    }


def render_apple_tv_plus(x: Listing) -> dict[str, Any]:
    offers: list[dict[str, Any]] = [{"kind": "subscribe", "variant": "4K"}] if x.subscription \
        else []
    for kind, price in (("rent", x.rental_price), ("buy", x.purchase_price)):
        if price is not None:
            offers.append({"kind": kind, "price": price, "currencyCode": x.currency,
                           "variant": "HD"})
    art = f"https://img.appletvplus.example/{x.platform_content_id}/{{w}}x{{h}}bb.jpg"
    return {
        "id": x.platform_content_id, "type": "movies",
        "attributes": _drop_none({
            "name": x.title, "description": {"standard": x.overview},
            "releaseDate": _date(x), "durationInMillis": x.runtime_minutes * 60_000,
            "genreNames": _labels(x), "contentRating": x.maturity.lower(),
            "isAppleOriginal": x.is_original,
            "artwork": {"url": art, "width": 2000, "height": 3000} if x.has_poster else None,
            "backgroundArtwork": {"url": _img(x, "backdrop")} if x.has_backdrop else None,
            "externalIds": _drop_none({"eidr": x.eidr_id, "imdb": x.imdb_id, "tmdb": x.tmdb_id}),
        }),
        "offers": offers, "storefronts": [r.lower() for r in x.regions],
        "availability": {"from": _iso(x.available_from), "until": _iso(x.available_until)},
    }


def render_hbo_max(x: Listing) -> dict[str, Any]:
    images = [{"role": r, "url": _img(x, k)} for r, k, ok in (
        ("poster", "poster_large", x.has_poster), ("background", "backdrop", x.has_backdrop)) if ok]
    return {
        "urn": x.platform_content_id, "titles": {"full": x.title, "short": x.title[:24]},
        "summaries": {"full": x.overview}, "releaseYear": x.year,
        "runtimeSeconds": x.runtime_minutes * 60, "genres": _labels(x),
        "ratingCode": _us(x.maturity),
        "availableTiers": [t.upper() for t in _tiers_from(x)], "maxOriginal": x.is_original,
        "references": _drop_none({"imdb": x.imdb_id, "eidr": x.eidr_id, "tmdb": x.tmdb_id}),
        "images": images, "territories": x.regions,
        "window": {"start": _iso(x.available_from), "end": _iso(x.available_until)},
    }


def render_peacock(x: Listing) -> dict[str, Any]:
    images = [{"type": t, "url": _img(x, k)} for t, k, ok in (
        ("titleArt34", "poster_medium", x.has_poster), ("landscape", "backdrop", x.has_backdrop))
        if ok]

    def ms(dt: datetime | None) -> int | None:
        return None if dt is None else int(dt.timestamp() * 1000)

    return {
        "id": x.platform_content_id, "type": "ASSET/PROGRAMME",
        "attributes": {
            "title": x.title, "synopsisLong": x.overview, "year": x.year,
            "durationSeconds": x.runtime_minutes * 60,
            "genres": [{"title": n} for n in _labels(x)], "classification": [_us(x.maturity)],
            "peacockOriginal": x.is_original,
            "tier": {"free": "Free", "premium": "Premium", "premium_plus": "Premium Plus"}[
                x.tier or "premium"],
            "videoFormats": x.qualities,
        },
        "identifiers": _drop_none({"eidr": x.eidr_id, "imdb": x.imdb_id, "tmdb": x.tmdb_id}),
        "images": images, "territories": x.regions,
        "offerWindow": {"startTime": ms(x.available_from), "endTime": ms(x.available_until)},
    }


def render_paramount_plus(x: Listing) -> dict[str, Any]:
    labels = _labels(x)
    date = _date(x)
    return {
        "contentId": x.platform_content_id, "title": x.title, "shortDescription": x.overview,
        "airDate": None if date is None else f"{date[5:7]}/{date[8:10]}/{date[:4]}",
        "duration": f"{x.runtime_minutes // 60}h {x.runtime_minutes % 60}m",
        "genre": labels[0] if labels else None,
        "subGenres": labels[1:] + ([x.brand] if x.brand else []),
        "tier": (x.tier or "essential").upper(), "isParamountOriginal": x.is_original,
        "regionalRatings": {"US": _us(x.maturity)},
        "ids": _drop_none({"eidr": x.eidr_id, "imdb": x.imdb_id, "tmdb": x.tmdb_id}),
        "thumbnails": _drop_none({"poster": _img(x, "poster_medium"), "hero": _img(x, "backdrop")}),
        "availableRegions": x.regions, "startDate": _iso(x.available_from),
        "endDate": _iso(x.available_until),
    }


def render_youtube(x: Listing) -> dict[str, Any]:
    title = x.title if x.year is None else f"{x.title} ({x.year})"
    if x.views % 3 == 0:
        title += " | Full Movie"
    offers: list[dict[str, Any]] = []
    if not x.rental_price and not x.purchase_price:
        offers.append({"type": "free"})
    for kind, price in (("rent", x.rental_price), ("buy", x.purchase_price)):
        if price is not None:
            offers.append({"type": kind, "priceMicros": int(round(price * 1_000_000)),
                           "currency": x.currency})
    hours, minutes = divmod(x.runtime_minutes, 60)
    thumbs = {k: {"url": _img(x, f"poster_{k}")} for k in ("default", "medium", "high")}
    return {
        "kind": "youtube#video", "id": x.platform_content_id,
        "snippet": {"title": title, "description": x.overview,
                    "publishedAt": _iso(x.available_from), "channelTitle": "YouTube Movies",
                    "tags": _labels(x) + ["full movie", "movies"], "categoryId": "30",
                    "thumbnails": thumbs | {"maxres": {"url": _img(x, "backdrop")}}},
        "contentDetails": {"duration": f"PT{hours}H{minutes}M",
                           "regionRestriction": {"allowed": x.regions},
                           "definition": "hd" if "HD" in x.qualities else "sd"},
        "statistics": {"viewCount": str(x.views)},
        "offers": offers,
        "externalIds": _drop_none({"imdb": x.imdb_id}),
    }


RENDERERS: dict[str, Callable[[Listing], dict[str, Any]]] = {
    "netflix": render_netflix, "prime_video": render_prime_video,
    "disney_plus": render_disney_plus, "hulu": render_hulu, "apple_tv_plus": render_apple_tv_plus,
    "hbo_max": render_hbo_max, "peacock": render_peacock, "paramount_plus": render_paramount_plus,
    "youtube": render_youtube,
}


def render(x: Listing) -> dict[str, Any]:
    """The raw ``data`` JSON of ``x`` in its platform's shape."""
    return RENDERERS[x.platform](x)


__all__ = ["RENDERERS", "render"]
