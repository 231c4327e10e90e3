"""Where to watch in served results and availability filters, in-process (issue 11, item 2).

The app serves the hybrid bundle (v3) over a real SQLite catalog whose canonical ids are the
model's item ids; lists, similar items and search results carry the live offers, filters
restrict the ranking's candidates (so a filtered list is still ``limit`` long and equals
:meth:`Pipeline.rank` with the same candidates), and expired offers are never served.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from serving_fixtures import Bundles, write_config

from sona.catalog import Availability, CatalogStore, ContentItem, ExternalIds, utcnow
from sona.catalog.availability import AvailabilityIndex
from sona.db import sqlite_url
from sona.embeddings import TfidfConfig, TfidfEncoder
from sona.search.analytics import SearchAnalytics
from sona.search.documents import check_documents
from sona.search.engine import SearchConfig, SearchEngine
from sona.search.faiss_index import FaissIndexConfig
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.errors import ApiError
from sona.serving.schemas import (
    BatchRecommendationRequest,
    RecommendationRequest,
    SimilarRequest,
)
from sona.serving.search_api import SearchHandler, SearchRequest
from sona.serving.where_to_watch import WhereToWatchService

DAY = timedelta(days=1)
NETFLIX_US = [str(i) for i in range(5100, 5200, 3)]  # 34 items live on Netflix in the US
GB_ONLY = ["5001", "5003"]  # live on Netflix, in Great Britain only
EXPIRED = "5005"  # Hulu offer ended yesterday
FUTURE = "5007"  # Peacock offer opens tomorrow


def offer(platform: str, regions: list[str], *, start_days: float = -30,
          end_days: float | None = 30, **extra: object) -> Availability:
    now = utcnow()
    return Availability.model_validate({
        "platform": platform, "availability_type": "subscription", "regions": regions,
        "available_from": now + start_days * DAY,
        "available_until": None if end_days is None else now + end_days * DAY, **extra})


def catalog_items() -> list[ContentItem]:
    items = [ContentItem(canonical_id=i, title=f"Film {i}", data_quality_score=0.75,
                         external_ids=ExternalIds(platform_ids={"netflix": f"8{i}"}),
                         availability=[offer("netflix", ["US", "CA"])]) for i in NETFLIX_US]
    items += [ContentItem(canonical_id=i, title=f"Film {i}",
                          availability=[offer("netflix", ["GB"], deep_link_url="nflx://t/1",
                                              web_url="https://www.netflix.com/title/1")])
              for i in GB_ONLY]
    items.append(ContentItem(canonical_id=EXPIRED, title="Gone",
                             availability=[offer("hulu", ["US"], end_days=-1)]))
    items.append(ContentItem(canonical_id=FUTURE, title="Soon",
                             availability=[offer("peacock", ["US"], start_days=1)]))
    return items


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[SonaApp]:
    work = tmp_path_factory.mktemp("where")
    store = CatalogStore(sqlite_url(work / "catalog.db"))  # the app's default catalog path
    store.put_many(catalog_items())
    store.close()
    sona_app = SonaApp(load_serving_config(write_config(
        work / "serving.yaml", bundles.models_dir, version="3",
        catalog={"encoder": "none"})))
    yield sona_app
    sona_app.close()


def _ids(resp) -> list[str]:  # noqa: ANN001
    return [str(r.content_id) for r in resp.recommendations]


def test_results_carry_live_offers_with_well_formed_deep_links(app: SonaApp) -> None:
    resp = app.recs.recommendations(RecommendationRequest(user_id="stranger", limit=5,
                                                          platforms=["Netflix"]))
    assert len(resp.recommendations) == 5
    for rec in resp.recommendations:
        w = rec.where_to_watch
        assert w is not None and w.region == "US" and w.data_quality_score == 0.75
        (o,) = w.offers
        assert (o.platform, o.availability_type) == ("netflix", "subscription")
        # no feed link: built from the Netflix id through the templates
        assert o.deep_link_url == f"nflx://www.netflix.com/title/8{rec.content_id}"
        web = urlsplit(o.web_url or "")
        assert (web.scheme, web.netloc) == ("https", "www.netflix.com")
        assert o.available_from is not None and o.available_from <= utcnow()


def test_filtered_lists_hold_only_matching_items_and_still_fill_limit(app: SonaApp) -> None:
    model = app.store.current
    warm = str(model.users.id(0))
    for user in ("stranger", warm):
        resp = app.recs.recommendations(RecommendationRequest(
            user_id=user, limit=10, platforms=["netflix"], region="us"))
        assert len(resp.recommendations) == 10 and set(_ids(resp)) <= set(NETFLIX_US)
    # the served list is the pipeline's own ranking among the allowed items
    state = app.personalization.state(model, warm)
    allowed = np.sort(model.items.numbers([int(i) for i in NETFLIX_US]))
    ranked = model.pipeline.rank([state], 10, candidates=allowed)
    resp = app.recs.recommendations(RecommendationRequest(user_id=warm, limit=10,
                                                          platforms=["netflix"]))
    assert _ids(resp) == [str(i) for i in model.items.ids(ranked.idx[0])]


def test_expired_and_future_offers_are_never_served(app: SonaApp) -> None:
    for platform in ("hulu", "peacock"):  # only an expired / a future offer exists
        resp = app.recs.recommendations(RecommendationRequest(
            user_id="stranger", limit=10, platforms=[platform]))
        assert resp.recommendations == []
    now = utcnow()
    for cid in (EXPIRED, FUTURE):
        w = app.where.index.where_to_watch(cid, "US", now)
        assert w is not None and w.offers == []
    gb = app.recs.recommendations(RecommendationRequest(
        user_id="stranger", limit=10, region="GB", available_now=True))
    assert sorted(_ids(gb)) == GB_ONLY
    assert all(o.region == "GB" for r in gb.recommendations
               for o in r.where_to_watch.offers)  # type: ignore[union-attr]


def test_catalog_writes_reach_served_filters_without_restart(app: SonaApp) -> None:
    req = RecommendationRequest(user_id="stranger", limit=10, platforms=["youtube"])
    assert app.recs.recommendations(req).recommendations == []
    store = app.catalog.store
    store.put(ContentItem(canonical_id="5101", title="New", availability=[
        offer("youtube", ["US"], end_days=None)]))
    assert _ids(app.recs.recommendations(req)) == ["5101"]
    store.set_availability(NETFLIX_US[0], "youtube", [offer("youtube", [])])  # worldwide
    assert sorted(_ids(app.recs.recommendations(req))) == sorted(["5101", NETFLIX_US[0]])
    store.set_availability(NETFLIX_US[0], "youtube", [])
    store.delete("5101")
    assert app.recs.recommendations(req).recommendations == []


def test_batch_and_similar_items_carry_where_to_watch(app: SonaApp) -> None:
    batch = app.recs.batch(BatchRecommendationRequest(user_ids=["a", "b"], limit=3,
                                                      available_now=True))
    assert all(len(r.recommendations) == 3 for r in batch.results)
    assert all(r.where_to_watch and r.where_to_watch.offers for res in batch.results
               for r in res.recommendations)
    sim = app.recs.similar(SimilarRequest(content_id=NETFLIX_US[0], limit=20, region="CA"))
    known = [s for s in sim.similar_content if str(s.content_id) in NETFLIX_US]
    unknown = [s for s in sim.similar_content if s.where_to_watch is None]
    assert all(s.where_to_watch.offers[0].region == "CA" for s in known)  # type: ignore[union-attr]
    assert all(str(s.content_id) not in app.where.index for s in unknown)


def test_bad_filters_are_400_naming_the_field(app: SonaApp) -> None:
    with pytest.raises(ApiError) as info:
        app.recs.recommendations(RecommendationRequest(user_id="u", platforms=["netflux"]))
    assert info.value.status == 400 and info.value.details["field"] == "platforms"
    assert "netflux" in info.value.message
    for bad in ({"region": "USA"}, {"region": "1!"}, {"platforms": "netflix"}):
        with pytest.raises(ValidationError) as err:
            RecommendationRequest.model_validate({"user_id": "u", **bad})
        assert err.value.errors()[0]["loc"][0] == next(iter(bad))
    status, body = app.dispatch("recommendations", lambda: app.recs.recommendations(
        RecommendationRequest(user_id="u", platforms=["nope"])))
    assert status == 400 and body["field"] == "platforms"


@pytest.fixture()
def search(tmp_path: Path) -> SearchHandler:
    ids = [*NETFLIX_US[:3], EXPIRED, "5009"]
    frame = pd.DataFrame({"item_id": [int(i) for i in ids],
                          "title": [f"Space film {i}" for i in ids],
                          "genres": [["sci_fi"]] * len(ids), "year": [1990] * len(ids),
                          "popularity": np.linspace(1.0, 0.5, len(ids))})
    frame["overview"] = "a space adventure"
    engine = SearchEngine(SearchConfig(vector=FaissIndexConfig(kind="flat")),
                          TfidfEncoder(TfidfConfig(n_components=2))).build(
        check_documents(frame))
    where = WhereToWatchService(AvailabilityIndex(catalog_items()))
    return SearchHandler(engine, SearchAnalytics(data_dir=tmp_path), where=where)


def test_search_filters_by_live_availability_and_carries_offers(search: SearchHandler) -> None:
    everything = search.search(SearchRequest(query="space"))
    assert everything.total_count == 5
    by_id = {r.content.id: r.content.where_to_watch for r in everything.results}
    assert by_id["5009"] is None and by_id[EXPIRED].offers == []  # type: ignore[union-attr]
    hits = search.search(SearchRequest(query="space", filters={"platforms": ["netflix"]}))
    assert sorted(r.content.id for r in hits.results) == NETFLIX_US[:3]
    assert all(r.content.where_to_watch.offers[0].deep_link_url  # type: ignore[union-attr]
               for r in hits.results)
    assert search.search(SearchRequest(query="space", filters={
        "platforms": ["hulu"], "available_now": True})).total_count == 0
    with pytest.raises(ApiError) as info:
        search.search(SearchRequest(query="space", filters={"platforms": ["netflux"]}))
    assert info.value.status == 400 and info.value.details["field"] == "filters.platforms"

