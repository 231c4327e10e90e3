"""MovieLens-100K as a catalog source: seed ids, content and idempotence (issue 11)."""

from __future__ import annotations

import pytest

from sona.catalog import CatalogStore, ContentItem, utcnow
from sona.data.sources import MovieLens
from sona.ingest.movielens import ID_TYPE, RAW_KEY, movielens_items, seed_catalog
from sona.ingest.pipeline import register_items
from sona.ingest.records import CanonicalRecord
from sona.ingest.resolution import EntityResolver, ResolverConfig
from sona.search.documents import documents_from_catalog, documents_from_items


@pytest.fixture(scope="module")
def seeds(ml100k: MovieLens) -> list[ContentItem]:
    return movielens_items(ml100k)


def test_seed_ids_are_movielens_ids(seeds: list[ContentItem], ml100k: MovieLens) -> None:
    assert len(seeds) == len(ml100k.catalog)
    star_wars = next(i for i in seeds if i.canonical_id == "50")
    assert star_wars.title == "Star Wars" and star_wars.release_year == 1977
    assert "sci_fi" in star_wars.genres
    assert star_wars.rating_count == 583 and star_wars.popularity_score == pytest.approx(1.0)
    city = next(i for i in seeds if i.title == "The City of Lost Children")
    assert city.alternate_titles[RAW_KEY].startswith("City of Lost Children, The")


@pytest.mark.parametrize("bad", ["050", "12a", "", "-3", "1" * 13])
def test_canonical_id_is_uuid_or_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="canonical_id"):
        ContentItem(canonical_id=bad, title="x")


def test_documents_from_seeds_match_the_file_documents(seeds: list[ContentItem],
                                                       ml100k: MovieLens) -> None:
    """Search reads the catalog now: titles, overviews (KG facts) and popularity agree."""
    files = documents_from_catalog(ml100k.catalog, ml100k.interactions, kg=ml100k.kg,
                                   links=ml100k.links)
    catalog = documents_from_items(seeds)
    assert catalog["item_id"].tolist() == [str(i) for i in files["item_id"]]
    for col in ("title", "alternate_titles", "overview", "genres"):
        assert catalog[col].tolist() == files[col].tolist(), col
    for col in ("year", "popularity", "rating"):
        assert catalog[col].fillna(-1).tolist() == pytest.approx(files[col].fillna(-1).tolist())


def test_seeding_is_idempotent(tmp_path, seeds: list[ContentItem]) -> None:  # noqa: ANN001
    store = CatalogStore(f"sqlite:///{tmp_path / 'c.db'}")
    first = seed_catalog(store, seeds[:50])
    assert (first.n_created, first.n_kept) == (50, 0)
    store.update("50", {"overview": "edited by an admin"})
    again = seed_catalog(store, seeds[:60])
    assert (again.n_created, again.n_kept) == (10, 50)
    assert store.get("50").overview == "edited by an admin"  # enrichments are kept
    assert store.count() == 60
    assert store.lookup_mapping("50", ID_TYPE) == ("50", 1.0)
    audit = len(store.audit_log(limit=1000))
    assert seed_catalog(store, seeds[:60]).n_created == 0
    assert len(store.audit_log(limit=1000)) == audit  # a rerun writes nothing


def test_feed_record_resolves_onto_the_seed(seeds: list[ContentItem]) -> None:
    resolver = EntityResolver(ResolverConfig(rules=("eidr", "external_id", "fuzzy_title")))
    register_items(resolver, seeds)
    record = CanonicalRecord(platform_id="netflix", platform_content_id="nf-1",
                             title="STAR WARS", release_year=1977, genres=["sci_fi"],
                             updated_at=utcnow())
    assert resolver.resolve(record).entity_id == "50"
