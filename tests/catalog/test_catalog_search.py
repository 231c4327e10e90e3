"""Search follows the catalog store (issue 11) on SQLite and PostgreSQL: the engine is built
from the catalog (an empty one is seeded from ML-100K, ids = MovieLens ids), and a written or
deleted item reaches the live engine through ``SearchService.apply`` without a rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from sona.catalog import CatalogStore, ContentItem
from sona.data.sources import MovieLens
from sona.ingest.pipeline import index_update_for
from sona.serving.search_http import SearchServingConfig, build_search_service


def _top(service, query: str) -> list[str]:  # noqa: ANN001
    hits = service.handler.engine.search(query, page_size=5).hits
    return [str(h.item_id) for h in hits]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogStore:
    if request.param == "sqlite":
        return CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    # a database of its own: the seed fills the catalog, other tests share the default one
    return CatalogStore(request.getfixturevalue("fresh_postgres_url"))


def test_search_is_built_from_and_follows_the_catalog(store: CatalogStore, tmp_path: Path,
                                                      ml100k: MovieLens) -> None:
    config = SearchServingConfig(encoder="tfidf", warm_up=False,
                                 engine_dir=str(tmp_path / "engine"))
    service = build_search_service(config, str(tmp_path / "sona.db"), catalog=store)
    assert service.error is None, service.error
    assert store.count() == len(ml100k.catalog)  # the empty catalog was seeded
    assert _top(service, "star wars")[0] == "50"
    assert service.source.startswith("built from")

    item = store.add(ContentItem(title="Zorblax and the Quantum Lighthouse", release_year=2021,
                                 overview="A lighthouse keeper bends time.",
                                 genres=["sci_fi"]))
    assert item.canonical_id not in _top(service, "zorblax quantum lighthouse")
    service.apply(index_update_for([item], None))
    assert _top(service, "zorblax quantum lighthouse")[0] == item.canonical_id
    found, _ = service.handler.engine.autocomplete("zorbl")
    assert [s.text for s in found][:1] == ["Zorblax and the Quantum Lighthouse"]
    assert len(service.handler.engine) == len(ml100k.catalog) + 1

    store.update(item.canonical_id, {"title": "Quibblewick Harbour"})
    service.apply(index_update_for([item], None))  # re-read from the catalog, not the event
    assert _top(service, "quibblewick harbour")[0] == item.canonical_id
    assert len(service.handler.engine) == len(ml100k.catalog) + 1

    store.delete(item.canonical_id)
    service.apply(index_update_for([], None, removed=[item.canonical_id]))
    assert item.canonical_id not in _top(service, "quibblewick harbour")
    assert len(service.handler.engine) == len(ml100k.catalog)
    service.close()
    store.close()
