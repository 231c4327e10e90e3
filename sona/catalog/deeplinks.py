"""Deep-link templates of the nine platforms: the one place a title's app/web links are made.

Each platform opens a title from its own content id (``platform_ids`` in the catalog's
external ids, ``platform_content_id`` in a feed record) in three forms: the mobile app's
URL scheme, the web player and the TV app. Apple TV+, Disney+ and Peacock also put a
slug of the title into the web URL. The ingest normalisers call :func:`deep_links` for
every record (:meth:`sona.ingest.normalizers.base.Normalizer.normalize`); the served
"where to watch" (:mod:`sona.catalog.availability`) calls it for offers a feed or an admin
wrote without links. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict


class DeepLinks(BaseModel):
    """Links that open a title in a platform's apps (SPEC §4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mobile: str  # the phone/tablet app's URL scheme
    web: str  # the web player (https)
    tv: str  # the TV app's URL scheme


#: platform -> (mobile, web, tv) templates; ``{id}`` is the platform's content id
#: (percent-encoded), ``{slug}`` the title slug (:func:`slug`)
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "netflix": ("nflx://www.netflix.com/title/{id}", "https://www.netflix.com/title/{id}",
                "netflix://title/{id}"),
    "prime_video": ("aiv://aiv/detail?asin={id}", "https://www.amazon.com/gp/video/detail/{id}",
                    "primevideo://detail?asin={id}"),
    "disney_plus": ("disneyplus://content/{id}",
                    "https://www.disneyplus.com/movies/{slug}/{id}",
                    "disneyplus://content/{id}"),
    "hulu": ("hulu://watch/{id}", "https://www.hulu.com/watch/{id}", "hulu://details/{id}"),
    "apple_tv_plus": ("com.apple.tv://tv.apple.com/movie/{id}",
                      "https://tv.apple.com/movie/{slug}/{id}",
                      "com.apple.tv://tv.apple.com/movie/{id}"),
    "hbo_max": ("hbomax://content/{id}", "https://play.max.com/movie/{id}",
                "hbomax://content/{id}"),
    "peacock": ("peacock://watch/{id}",
                "https://www.peacocktv.com/watch/asset/movies/{slug}/{id}",
                "peacocktv://asset/{id}"),
    "paramount_plus": ("paramountplus://content/{id}",
                       "https://www.paramountplus.com/movies/video/{id}/",
                       "paramountplus://content/{id}"),
    "youtube": ("vnd.youtube://{id}", "https://www.youtube.com/watch?v={id}",
                "youtube://watch?v={id}"),
}


def slug(title: str) -> str:
    """URL slug of a title: accents folded, lower-case, runs of other characters as ``-``.

    ``"The Matrix"`` -> ``"the-matrix"``, ``"Amélie"`` -> ``"amelie"``; a title with no
    letter or digit gives ``"title"``.
    """
    folded = "".join(c for c in unicodedata.normalize("NFKD", title)
                     if not unicodedata.combining(c))
    return "-".join(re.sub(r"[^a-z0-9]+", " ", folded.lower()).split()) or "title"


def deep_links(platform: str, platform_content_id: str, title: str) -> DeepLinks:
    """The app, web and TV links that open ``platform_content_id`` on ``platform``.

    The id is percent-encoded (``:`` kept, as in HBO Max's ``urn:hbo:...`` ids), so an id
    from a feed can never change a link's host or add query parameters.

    Raises:
        ValueError: a platform without templates, or an empty id.
    """
    if platform not in TEMPLATES:
        raise ValueError(f"no deep-link templates for platform {platform!r}; "
                         f"expected one of {list(TEMPLATES)}")
    pid = platform_content_id.strip()
    if not pid:
        raise ValueError(f"empty {platform} content id: cannot build a deep link")
    values = {"id": quote(pid, safe=":"), "slug": slug(title)}
    mobile, web, tv = (t.format(**values) for t in TEMPLATES[platform])
    return DeepLinks(mobile=mobile, web=web, tv=tv)


__all__ = ["TEMPLATES", "DeepLinks", "deep_links", "slug"]
