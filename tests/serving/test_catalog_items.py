"""CatalogItemsFollower's load hook over a real SQLite catalog (issue 11).

What a loaded version gets from the catalog: deletions recorded in the audit log are
removed (unless the item is back), MovieLens seed ids it lacks stay out, and a pipeline
whose content source cannot embed text still loads (its cold items are skipped). The
embedding path over the real server is ``test_catalog_recs_server.py`` (slow).
"""

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from sona.catalog.schema import ContentItem
from sona.catalog.store import CatalogStore
from sona.db import sqlite_url
from sona.pipeline import Pipeline
from sona.serving.catalog_items import CatalogItemsFollower
from sona.serving.model_store import LoadedModel, ModelStore
from sona.testing.fixtures import random_interactions
from tests.pipeline.test_pipeline import small


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return small().fit(random_interactions(seed=3))


def _loaded(pipeline: Pipeline) -> LoadedModel:
    return LoadedModel("m", "1", Path("."), {}, pipeline, None, time.time())


def test_prepare_applies_deletions_and_keeps_seeds_out(pipeline: Pipeline,
                                                       tmp_path: Path) -> None:
    catalog = CatalogStore(sqlite_url(tmp_path / "catalog.db"))
    trained = [str(i) for i in pipeline.items_.ids_array[:3]]
    for item_id in trained:
        catalog.put(ContentItem(canonical_id=item_id, title=f"film {item_id}"))
    catalog.delete(trained[0])  # deleted for good
    catalog.delete(trained[1])
    catalog.put(ContentItem(canonical_id=trained[1], title="back again"))  # deleted, back
    catalog.put(ContentItem(canonical_id="999999", title="a held-out seed"))
    fresh = str(uuid.uuid4())
    catalog.put(ContentItem(canonical_id=fresh, title="a new film"))
    follower = CatalogItemsFollower(ModelStore(tmp_path, "m"), catalog)
    try:
        model = _loaded(pipeline)
        out = follower.prepare(model)
        delta = out.pipeline.delta()
        assert out is not model and pipeline.delta() is None  # a copy was changed
        assert delta is not None
        # the source here is "interactions": the new film cannot be embedded, so it is
        # skipped (logged) and the version still loads; the seed is never a cold item
        assert delta.ids == ()
        assert out.pipeline.items_.ids(delta.removed).tolist() == [int(trained[0])]
        user = pipeline.users_.ids_array[:1]
        listed = {str(i) for i in out.pipeline.recommend(user, k=len(pipeline.items_) - 30)
                  .ids[0]}
        assert trained[0] not in listed
        # nothing to apply: the same object back
        catalog.put(ContentItem(canonical_id=trained[0], title="restored"))
        assert follower.prepare(_loaded(pipeline)).pipeline.delta() is None
    finally:
        follower.close()
        catalog.close()
    assert np.isfinite(pipeline.features_.vectors).all()
