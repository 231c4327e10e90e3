"""Deep-link templates: one per platform with a normaliser, well-formed, injection-safe."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from sona.catalog.deeplinks import TEMPLATES, deep_links, slug
from sona.catalog.schema import PLATFORMS
from sona.ingest.normalizers import NORMALIZERS


def test_every_platform_with_a_normaliser_has_templates() -> None:
    assert set(TEMPLATES) == set(PLATFORMS) == set(NORMALIZERS)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_links_are_well_formed(platform: str) -> None:
    links = deep_links(platform, "abc123", "Amélie: The Return")
    web = urlsplit(links.web)
    assert web.scheme == "https" and web.netloc and "abc123" in links.web
    for app in (links.mobile, links.tv):
        scheme = urlsplit(app).scheme
        assert scheme and scheme not in ("http", "https") and "abc123" in app


def test_known_links_and_slugs() -> None:
    assert deep_links("netflix", "60000724", "x").mobile == "nflx://www.netflix.com/title/60000724"
    assert deep_links("apple_tv_plus", "umc.cmc.1", "Amélie").web == \
        "https://tv.apple.com/movie/amelie/umc.cmc.1"
    assert deep_links("hbo_max", "urn:hbo:feature:G1", "x").web == \
        "https://play.max.com/movie/urn:hbo:feature:G1"
    assert slug("The Matrix") == "the-matrix" and slug("?!") == "title"


def test_a_hostile_id_cannot_change_host_or_query() -> None:
    links = deep_links("youtube", "x&list=evil/../@attacker.com", "t")
    assert urlsplit(links.web).netloc == "www.youtube.com"
    assert "&" not in links.web and "/" not in links.web.split("v=", 1)[1]


def test_unknown_platform_and_empty_id_are_refused() -> None:
    with pytest.raises(ValueError, match="crave"):
        deep_links("crave", "1", "t")
    with pytest.raises(ValueError, match="empty"):
        deep_links("netflix", "  ", "t")
