from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Catalog
from sona.pipeline import ContentConfig, ItemFeatures, Pipeline, PipelineConfig, content_vectors
from sona.pipeline.features import unit_rows
from sona.testing.fixtures import random_interactions

INTERACTIONS = ContentConfig(source="interactions", n_components=8)


def test_interaction_vectors_are_deterministic_unit_rows() -> None:
    data = random_interactions(seed=2)
    matrix = data.matrix("weight")
    a, info = content_vectors(data.items, INTERACTIONS, matrix=matrix)
    b, _ = content_vectors(data.items, INTERACTIONS, matrix=matrix.copy())
    assert a.shape == (data.n_items, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    norms = np.linalg.norm(a, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-6)
    assert (norms > 0).all()  # every item has an interaction, so none is a zero row
    assert info == {"source": "interactions", "model": "item-user-svd", "version": "8",
                    "dim": 8, "missing": 0}
    # items watched by the same users get the same direction
    dense = (matrix.T > 0).toarray().astype(float)
    same = [(i, j) for i in range(len(dense)) for j in range(i + 1, len(dense))
            if (dense[i] == dense[j]).all()]
    for i, j in same:
        np.testing.assert_allclose(a[i], a[j], atol=1e-6)


def test_interaction_vectors_cap_the_dimension_and_need_the_matrix() -> None:
    data = random_interactions(n_users=5, n_items=12, n_interactions=30, seed=1)
    vecs, info = content_vectors(data.items, ContentConfig(source="interactions",
                                                           n_components=64),
                                 matrix=data.matrix("weight"))
    assert vecs.shape == (data.n_items, 5) and info["dim"] == 5  # 5 users: rank <= 5
    with pytest.raises(ValueError, match="needs the training matrix"):
        content_vectors(data.items, INTERACTIONS)
    with pytest.raises(ValueError, match="needs a catalog"):
        content_vectors(data.items, ContentConfig(source="genres"))


def test_genre_vectors_align_to_the_item_index() -> None:
    data = random_interactions(n_users=10, n_items=6, n_interactions=30, seed=1)
    ids = data.items.ids_array
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": ids[::-1], "title": [f"t{i}" for i in range(len(ids))], "year": 1995,
        "genres": [("Comedy",), ("Drama",)] * (len(ids) // 2)}))
    vecs, info = content_vectors(data.items, ContentConfig(source="genres"), catalog=catalog)
    assert info["source"] == "genres" and info["missing"] == 0
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    # the catalog is listed in reverse: item ids[-1] is a comedy, ids[-2] a drama
    last, second = data.items.numbers([ids[-1], ids[-2]])
    assert vecs[last] @ vecs[second] == pytest.approx(0.0)
    assert vecs[last] @ vecs[data.items.number(ids[-3])] == pytest.approx(1.0)


def test_unit_rows_keep_zero_rows() -> None:
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_item_features_state_round_trip(tmp_path: Path) -> None:
    data = random_interactions(seed=4)
    pipe = Pipeline(PipelineConfig(content=INTERACTIONS, side_source=None, graph=None))
    features = pipe.build_features(data)
    assert features.n_items == data.n_items and features.dim == 8
    assert features.lora_rank == pipe.config.lora.rank
    np.testing.assert_array_equal(
        features.popularity, np.asarray((data.matrix("weight") > 0).sum(axis=0)).ravel())
    np.savez(tmp_path / "f.npz", **features.state())
    with np.load(tmp_path / "f.npz", allow_pickle=False) as npz:
        restored = ItemFeatures.restore(dict(npz))
    for name in ("vectors", "popularity", "lora_base"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(features, name))
        assert getattr(restored, name).dtype == np.float32
    for name in ("popularity", "hourly", "weekday", "runtime", "genres"):
        np.testing.assert_array_equal(getattr(restored.context, name),
                                      getattr(features.context, name))
    assert restored.genres.dtype == bool
    assert restored.lora_scaling == features.lora_scaling
    assert restored.content_info == features.content_info


def test_texts_of_catalog_rows_replace_the_catalog_frame() -> None:
    """Item texts given by id (catalog rows, issue 11) embed exactly as the frame's texts
    do when they are the same texts; ids the texts lack get zero vectors."""
    from sona.embeddings import catalog_texts
    from sona.pipeline.features import catalog_item_texts
    from sona.search.documents import document_texts, documents_from_items

    data = random_interactions(n_users=30, n_items=20, n_interactions=200, seed=4)
    ids = data.items.ids_array
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": ids, "title": [f"film number {i} about {'cats' if i % 2 else 'dogs'}"
                                  for i in range(len(ids))],
        "year": 2000 + np.arange(len(ids)), "genres": [("Comedy",)] * len(ids)}))
    config = ContentConfig(source="tfidf", n_components=4)
    from_frame, info = content_vectors(data.items, config, catalog=catalog)
    texts = dict(zip((str(i) for i in ids), catalog_texts(catalog), strict=True))
    from_texts, info_texts = content_vectors(data.items, config, texts=texts)
    np.testing.assert_allclose(from_texts, from_frame, atol=1e-6)
    assert info_texts == info
    partial = {k: v for k, v in list(texts.items())[:5]}
    vecs, info_partial = content_vectors(data.items, config, texts=partial)
    assert info_partial["missing"] == len(ids) - 5 and not vecs[5:].any()
    # catalog rows' text is the search documents' text
    docs = documents_from_items([{"canonical_id": "7", "title": "Heat", "release_year": 1995,
                                  "genres": ["crime"], "overview": "A heist."}])
    assert catalog_item_texts(docs) == {"7": document_texts(docs)[0]}
