"""Seeded generator of realistic raw feeds for the nine platforms, with ground truth.

Real platform feeds cannot be fetched here, so the MovieLens 100K catalog plays the world's
film catalogue and each platform "lists" a seeded share of it in its own JSON shape
(:mod:`sona.ingest.feed_shapes`), with the quirks that make entity resolution hard:

- titles: ``"Matrix, The"`` vs ``"The Matrix"``, accents added or folded, the alternative
  title in parentheses kept or dropped, edition suffixes (``": Director's Cut"``), upper-case,
  an occasional typo, YouTube's ``"Title (1995) | Full Movie"``;
- release year off by one, or missing;
- external ids missing per platform habit, IMDb ids without the ``tt`` prefix, and a few
  conflicting ids (another film's IMDb/TMDb id: a copy-paste error);
- the same film listed twice on one platform (Prime Video / YouTube re-uploads);
- availability windows, prices, currencies, tiers and regions.

``noise="broad"`` adds the classes of :mod:`sona.ingest.feed_noise` (bracket aliases,
original-language titles, dropped subtitles, edition markers of many shapes, symbols,
``&``/and, numerals) and hard-negative look-alike works (remakes, sequels one year apart,
titles inside longer ones), on random streams of their own. ``Feeds.noise`` names the noise
classes of every record, ``Feeds.lookalikes`` the work each hard negative imitates.

The ground truth is the MovieLens work of every record: ``Feeds.truth[record.id]``. Works
are MovieLens items with duplicate (title, year) rows collapsed (ML-100K lists 18 films
twice under two item ids), keyed by the smallest item id.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from sona.catalog.schema import PLATFORMS
from sona.data.interactions import Catalog
from sona.genres import movielens_genres
from sona.ingest.feed_noise import LOOKALIKE_KINDS, broad_title, lookalike_title, lookalike_year
from sona.ingest.feed_render import render
from sona.ingest.feed_shapes import PROFILES, Listing, PlatformProfile
from sona.ingest.records import RawRecord
from sona.ingest.titles import uninvert_article

log = logging.getLogger(__name__)

FEED_VERSION = "1"  # bump when the generator's output changes for the same seed
_EDITIONS = (": Director's Cut", " (Remastered)", " - Special Edition", " [HD]", " (4K UHD)",
             " (Extended Edition)", ": 20th Anniversary Edition")
_ACCENTS = {"e": "é", "a": "à", "o": "ô", "u": "ü", "i": "í", "c": "ç", "n": "ñ"}
_MOTIFS = {
    "action": "a relentless chase across the city",
    "adventure": "an expedition into the unknown",
    "animation": "a hand-drawn world full of talking creatures",
    "comedy": "a plan that goes hilariously wrong",
    "crime": "a heist that unravels one betrayal at a time",
    "documentary": "real people and archival footage",
    "drama": "a family facing the choice of a lifetime",
    "family": "friendship that survives every test",
    "fantasy": "a kingdom bound by an ancient spell",
    "horror": "something waiting in the dark house",
    "mystery": "a detective chasing a vanished witness",
    "romance": "two strangers who keep meeting",
    "sci_fi": "a future where machines dream",
    "thriller": "a conspiracy closing in on one witness",
    "western": "a lone rider and a town that owes him",
    "musical": "songs that carry a love story",
    "war": "a platoon cut off behind the lines",
    "biography": "the life behind the legend",
    "history": "a turning point of history",
}


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """What the generator produces; equal configs give byte-identical feeds."""

    seed: int = 42  # master seed of every random draw
    n_movies: int | None = None  # sample this many works (None = the whole catalog)
    platforms: tuple[str, ...] = PLATFORMS  # which platforms to generate, in this order
    coverage_scale: float = 1.0  # multiplies each platform's share of the catalog
    p_year_off: float = 0.08  # chance a record's release year is off by one
    p_typo: float = 0.03  # chance of a one-character typo in a title of >= 12 characters
    p_conflicting_id: float = 0.02  # chance the IMDb or TMDb id is another film's id
    p_duplicate: float = 0.03  # chance Prime Video / YouTube list a film twice
    fetched_at: str = "2026-11-01T00:00:00+00:00"  # ISO time stamped on every raw record
    noise: Literal["classic", "broad"] = "classic"  # noise model (module docstring)
    p_broad: float = 0.4  # broad only: chance a record gets one broad noise class
    lookalike_share: float = 0.15  # broad only: share of works that get a hard-negative twin


@dataclass(frozen=True, slots=True)
class Work:
    """One real-world film (the ground-truth identity) and its true metadata."""

    work_id: int
    item_ids: tuple[int, ...]
    title: str  # MovieLens spelling, e.g. "Matrix, The"
    year: int | None
    genres: tuple[str, ...]  # canonical
    imdb_id: str
    tmdb_id: str
    eidr_id: str
    runtime_minutes: int
    maturity: str
    overview: str
    user_rating: float | None  # 0-10 (MovieLens mean x 2)
    rating_count: int
    popularity: float  # 0-1


@dataclass(frozen=True, slots=True)
class Feeds:
    """Generated raw records (grouped by platform) with the ground-truth work of each."""

    config: FeedConfig
    works: dict[int, Work]
    records: list[RawRecord]
    truth: dict[str, int] = field(default_factory=dict)  # raw record id -> work_id
    noise: dict[str, tuple[str, ...]] = field(default_factory=dict)  # record id -> classes
    lookalikes: dict[int, tuple[int, str]] = field(default_factory=dict)  # twin -> (work, kind)

    def by_platform(self) -> dict[str, list[RawRecord]]:
        """Records of each platform, in feed order."""
        out: dict[str, list[RawRecord]] = {p: [] for p in self.config.platforms}
        for rec in self.records:
            out[rec.platform].append(rec)
        return out


def feeds_digest(feeds: Feeds) -> str:
    """sha256 of the records and ground truth (canonical JSON): equal digests, equal feeds."""
    digest = hashlib.sha256()
    for rec in feeds.records:
        digest.update(rec.model_dump_json().encode())
        digest.update(f"|{feeds.truth[rec.id]}\n".encode())
    return digest.hexdigest()


def build_works(catalog: Catalog, ratings: pd.DataFrame | None, *, seed: int) -> dict[int, Work]:
    """The ground-truth works of a MovieLens catalog with seeded synthetic ids/metadata.

    Args:
        catalog: MovieLens items (item_id, title, year, genres).
        ratings: optional frame with item_id and rating (1-5) for user rating/popularity.
        seed: seed of the synthetic ids, runtimes and overviews.
    """
    frame = catalog.frame.sort_values("item_id", kind="stable")
    rng = np.random.default_rng([seed, 7])
    groups: dict[tuple[str, int | None], list[int]] = {}
    for item_id, title, year in zip(frame["item_id"], frame["title"], frame["year"], strict=True):
        yr = None if pd.isna(year) else int(year)
        groups.setdefault((str(title), yr), []).append(int(item_id))
    stats = _rating_stats(ratings)
    max_count = max((c for _, c in stats.values()), default=1)
    genres_of = dict(zip(frame["item_id"].astype(int), frame["genres"], strict=True))
    n = len(groups)
    imdb = rng.choice(np.arange(10_000, 130_000), size=n, replace=False)
    tmdb = rng.choice(np.arange(2, 40_000), size=n, replace=False)
    works: dict[int, Work] = {}
    for j, ((title, year), ids) in enumerate(groups.items()):
        genres = tuple(movielens_genres(genres_of[ids[0]]))
        mean, count = stats.get(ids[0], (None, 0))
        works[ids[0]] = Work(
            work_id=ids[0], item_ids=tuple(ids), title=title, year=year, genres=genres,
            imdb_id=f"tt{int(imdb[j]):07d}", tmdb_id=str(int(tmdb[j])), eidr_id=_eidr(rng),
            runtime_minutes=int(np.clip(rng.normal(108 if "documentary" not in genres else 92, 18),
                                        70, 200)),
            maturity=_maturity(genres, rng), overview=_overview(title, year, genres, rng),
            user_rating=None if mean is None else round(2 * mean, 2), rating_count=count,
            popularity=round(float(np.log1p(count) / np.log1p(max_count)), 4))
    return works


def generate_feeds(catalog: Catalog, ratings: pd.DataFrame | None = None,
                   config: FeedConfig = FeedConfig()) -> Feeds:
    """Raw feeds of ``config.platforms`` listing ``catalog`` works (see module docstring).

    Raises:
        ValueError: an unknown platform or a probability outside [0, 1].
    """
    _check(config)
    works = build_works(catalog, ratings, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    ids = sorted(works)
    if config.n_movies is not None and config.n_movies < len(ids):
        ids = sorted(int(i) for i in rng.choice(ids, size=config.n_movies, replace=False))
    fetched = datetime.fromisoformat(config.fetched_at).astimezone(UTC)
    lookalikes: dict[int, tuple[int, str]] = {}
    if config.noise == "broad":
        lookalikes = _add_lookalikes(works, ids, config)
        ids = ids + sorted(lookalikes)
    listed = {p: rng.random(len(ids)) < min(1.0, PROFILES[p].coverage * config.coverage_scale)
              for p in config.platforms}
    if config.noise == "broad":  # twins are listed on their own stream (classic draws stay)
        lrng = np.random.default_rng([config.seed, 14])
        n_orig = len(ids) - len(lookalikes)
        for p in config.platforms:
            share = min(1.0, PROFILES[p].coverage * config.coverage_scale)
            listed[p][n_orig:] = lrng.random(len(lookalikes)) < share
    for j in range(len(ids)):  # every work is offered somewhere
        if not any(listed[p][j] for p in config.platforms):
            listed[config.platforms[int(rng.integers(len(config.platforms)))]][j] = True
    records: list[RawRecord] = []
    truth: dict[str, int] = {}
    noise: dict[str, tuple[str, ...]] = {}
    used: set[str] = set()
    for platform in config.platforms:
        prng = np.random.default_rng([config.seed, PLATFORMS.index(platform)])
        brng = (np.random.default_rng([config.seed, PLATFORMS.index(platform), 14])
                if config.noise == "broad" else None)
        chosen = [works[ids[j]] for j in np.flatnonzero(listed[platform])]
        copies = [w for w in chosen if platform in ("prime_video", "youtube")
                  and prng.random() < config.p_duplicate]
        batch = chosen + copies
        for pos in prng.permutation(len(batch)):
            listing, classes = _listing(batch[int(pos)], platform, works, ids, config, prng,
                                        fetched, used, brng)
            rid = f"{platform}:{listing.platform_content_id}"
            records.append(RawRecord(id=rid, platform=platform, data=render(listing),
                                     fetched_at=fetched))
            truth[rid] = listing.work_id
            if int(pos) >= len(chosen):
                classes = (*classes, "duplicate")
            noise[rid] = classes or ("clean",)
    log.info("generated %d raw records for %d works on %d platforms",
             len(records), len(ids), len(config.platforms))
    return Feeds(config=config, works={i: works[i] for i in ids}, records=records, truth=truth,
                 noise=noise, lookalikes=lookalikes)


def _add_lookalikes(works: dict[int, Work], ids: Sequence[int],
                    config: FeedConfig) -> dict[int, tuple[int, str]]:
    """Add hard-negative twins of a seeded share of ``ids`` to ``works`` (fresh ids)."""
    rng = np.random.default_rng([config.seed, 15])
    chosen = [i for i in ids if works[i].year is not None
              and rng.random() < config.lookalike_share]
    taken_imdb = {w.imdb_id for w in works.values()}
    taken_tmdb = {w.tmdb_id for w in works.values()}
    out: dict[int, tuple[int, str]] = {}
    for n, wid in enumerate(chosen):
        base = works[wid]
        kind = str(rng.choice(LOOKALIKE_KINDS))
        if kind == "sequel" and re.search(r"\d\s*(\([^()]*\))?$", base.title):
            kind = "remake"  # "Die Hard 2" gets a remake, not "Die Hard 2 2"
        assert base.year is not None
        imdb, tmdb = f"tt{int(rng.integers(200_000, 9_999_999)):07d}", ""
        while imdb in taken_imdb:
            imdb = f"tt{int(rng.integers(200_000, 9_999_999)):07d}"
        while not tmdb or tmdb in taken_tmdb:
            tmdb = str(int(rng.integers(100_000, 999_999)))
        taken_imdb.add(imdb)
        taken_tmdb.add(tmdb)
        twin_id = 100_000 + n
        title = lookalike_title(base.title, kind, rng)
        year = lookalike_year(base.year, kind, rng)
        works[twin_id] = replace(
            base, work_id=twin_id, item_ids=(), title=title, year=year, imdb_id=imdb,
            tmdb_id=tmdb, eidr_id=_eidr(rng),
            runtime_minutes=int(np.clip(rng.normal(105, 18), 70, 200)),
            overview=_overview(title, year, base.genres, rng))
        out[twin_id] = (wid, kind)
    return out


def _listing(work: Work, platform: str, works: dict[int, Work], ids: Sequence[int],
             config: FeedConfig, rng: np.random.Generator, fetched: datetime,
             used: set[str], brng: np.random.Generator | None) -> tuple[Listing, tuple[str, ...]]:
    prof = PROFILES[platform]
    pcid = prof.new_id(rng)
    while f"{platform}:{pcid}" in used:
        pcid = prof.new_id(rng)
    used.add(f"{platform}:{pcid}")
    title, classes = _quirk_title(work.title, prof, config, rng, brng)
    year = work.year
    if year is not None and rng.random() < config.p_year_off:
        year += int(rng.choice([-1, 1]))
        classes.append("year_off")
    if rng.random() < prof.p_missing_year:
        year = None
        classes.append("missing_year")
    imdb = work.imdb_id if rng.random() < prof.p_imdb else None
    tmdb = work.tmdb_id if rng.random() < prof.p_tmdb else None
    if (imdb or tmdb) and rng.random() < config.p_conflicting_id:
        other = works[int(ids[int(rng.integers(len(ids)))])]
        if imdb and (not tmdb or rng.random() < 0.5):
            imdb = other.imdb_id
        else:
            tmdb = other.tmdb_id
        if other.work_id != work.work_id:
            classes.append("conflicting_id")
    if imdb and rng.random() < prof.p_bare_imdb:
        imdb = imdb[2:].lstrip("0")
    genres = [g for g in work.genres if rng.random() > prof.p_drop_genre] or list(work.genres)
    start = fetched - timedelta(days=int(rng.integers(0, 900)))
    until = fetched + timedelta(days=int(rng.integers(7, 400))) if rng.random() < 0.3 else None
    regions = sorted({"US"} | set(rng.choice(prof.regions, size=int(rng.integers(0, 4)),
                                            replace=False).tolist()))
    tier = str(rng.choice(prof.tiers)) if prof.tiers else None
    kinds = prof.offer_kinds(rng, tier)
    return Listing(
        platform=platform, platform_content_id=pcid, work_id=work.work_id, title=title,
        year=year, runtime_minutes=work.runtime_minutes + int(rng.integers(-2, 3)),
        overview=None if rng.random() < prof.p_missing_overview else work.overview,
        genres=genres, maturity=work.maturity,
        eidr_id=work.eidr_id if rng.random() < prof.p_eidr else None, imdb_id=imdb, tmdb_id=tmdb,
        regions=regions, subscription="subscription" in kinds,
        rental_price=float(rng.choice([2.99, 3.99, 4.99, 5.99])) if "rental" in kinds else None,
        purchase_price=(float(rng.choice([9.99, 12.99, 14.99, 19.99]))
                        if "purchase" in kinds else None),
        currency="USD", available_from=start, available_until=until,
        tier=tier,
        is_original=bool(rng.random() < prof.p_original),
        qualities=sorted({"HD"} | ({"UHD"} if rng.random() < 0.4 else set())
                         | ({"SD"} if rng.random() < 0.3 else set())),
        subtitles=["en"] + (["es"] if rng.random() < 0.6 else []),
        user_rating=work.user_rating if rng.random() < prof.p_user_rating else None,
        popularity=work.popularity,
        has_poster=bool(rng.random() > prof.p_missing_art),
        has_backdrop=bool(rng.random() > 2 * prof.p_missing_art),
        brand=prof.brand_of(work.title, work.genres, rng), fetched_at=fetched,
        views=int(10 ** (3 + 4 * work.popularity + rng.random())),
    ), tuple(classes)


def _quirk_title(title: str, p: PlatformProfile, config: FeedConfig, rng: np.random.Generator,
                 brng: np.random.Generator | None) -> tuple[str, list[str]]:
    classes: list[str] = []
    keep_alt = False
    if brng is not None:
        title, broad, keep_alt = broad_title(title, brng, config.p_broad)
        classes += [broad] if broad else []
    inverted = rng.random() < p.p_inverted
    out = title if inverted else uninvert_article(title)
    if inverted and out != uninvert_article(out):
        classes.append("inverted_article")
    if "(" in out and rng.random() < p.p_drop_alt and not keep_alt:
        dropped = re.sub(r"\s*\([^()]*\)\s*$", "", out) or out
        classes += ["dropped_alt"] if dropped != out else []
        out = dropped
    if rng.random() < p.p_accent:
        accented = _accentize(out, rng)
        classes += ["accent"] if accented != out else []
        out = accented
    if rng.random() < p.p_edition:
        out += str(rng.choice(_EDITIONS))
        classes.append("edition")
    if len(out) >= 12 and rng.random() < config.p_typo:
        out = _typo(out, rng)
        classes.append("typo")
    if rng.random() < p.p_upper:
        out = out.upper()
        classes.append("upper")
    return out, list(dict.fromkeys(classes))


def _accentize(title: str, rng: np.random.Generator) -> str:
    spots = [i for i, c in enumerate(title) if c in _ACCENTS and i > 0]
    if not spots:
        return title
    i = int(rng.choice(spots))
    return title[:i] + _ACCENTS[title[i]] + title[i + 1:]


def _typo(title: str, rng: np.random.Generator) -> str:
    letters = [i for i, c in enumerate(title[1:-1], start=1) if c.isalpha()]
    i = int(rng.choice(letters))
    if rng.random() < 0.5:
        return title[:i] + title[i + 1:]  # dropped letter
    return title[:i] + title[i + 1] + title[i] + title[i + 2:]  # swapped neighbours


def _rating_stats(ratings: pd.DataFrame | None) -> dict[int, tuple[float, int]]:
    if ratings is None or len(ratings) == 0:
        return {}
    g = ratings.groupby("item_id")["rating"].agg(["mean", "count"])
    return {int(i): (float(m), int(c))
            for i, m, c in zip(g.index, g["mean"], g["count"], strict=True)}


def _eidr(rng: np.random.Generator) -> str:
    groups = ["".join(rng.choice(list("0123456789ABCDEF"), 4)) for _ in range(5)]
    check = str(rng.choice(list(string.digits + string.ascii_uppercase)))
    return "10.5240/" + "-".join(groups) + "-" + check


def _maturity(genres: tuple[str, ...], rng: np.random.Generator) -> str:
    if "family" in genres or "animation" in genres:
        return str(rng.choice(["G", "PG"]))
    if "horror" in genres or "crime" in genres:
        return str(rng.choice(["R", "R", "PG13"]))
    return str(rng.choice(["PG", "PG13", "R", "NR"], p=[0.2, 0.4, 0.35, 0.05]))


def _overview(title: str, year: int | None, genres: tuple[str, ...],
              rng: np.random.Generator) -> str:
    name = uninvert_article(re.sub(r"\s*\([^()]*\)\s*$", "", title))
    motifs = [_MOTIFS[g] for g in genres if g in _MOTIFS] or ["a story told its own way"]
    first = motifs[int(rng.integers(len(motifs)))]
    when = f"in {year}" if year else "long ago"
    kind = " and ".join(g.replace("_", "-") for g in genres[:2]) or "feature"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{name}, {article} {kind} film released {when}, follows {first}."


def _check(config: FeedConfig) -> None:
    bad = [p for p in config.platforms if p not in PROFILES]
    if bad:
        raise ValueError(f"unknown platform(s) {bad}; expected some of {list(PROFILES)}")
    if config.noise not in ("classic", "broad"):
        raise ValueError(f"FeedConfig.noise must be 'classic' or 'broad', got {config.noise!r}")
    for name in ("p_year_off", "p_typo", "p_conflicting_id", "p_duplicate", "p_broad",
                 "lookalike_share"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"FeedConfig.{name} must lie in [0, 1], got {value}")
    if config.n_movies is not None and config.n_movies < 1:
        raise ValueError(f"FeedConfig.n_movies must be >= 1, got {config.n_movies}")


__all__ = [
    "FEED_VERSION", "FeedConfig", "Feeds", "Work", "build_works", "feeds_digest", "generate_feeds",
]
