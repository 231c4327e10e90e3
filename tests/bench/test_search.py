from __future__ import annotations

import numpy as np
import pytest

from sona.bench.search import expand_catalog, run_search_bench
from sona.embeddings import TfidfConfig, TfidfEncoder
from sona.search.documents import document_texts, documents_from_catalog
from sona.search.engine import SearchConfig
from sona.search.faiss_index import FaissIndexConfig


@pytest.fixture(scope="module")
def ml_docs_small(ml100k):
    """150 ML-100K documents with TF-IDF/LSA vectors (a real encoder, no model load)."""
    docs = documents_from_catalog(ml100k.catalog, ml100k.interactions).head(150)
    vecs = TfidfEncoder(TfidfConfig(n_components=32)).fit(document_texts(docs)) \
        .encode(document_texts(docs))
    return docs.reset_index(drop=True), vecs


def test_expand_catalog_is_seeded_and_valid(ml_docs_small):
    docs, vecs = ml_docs_small
    big, big_vecs = expand_catalog(docs, vecs, 500, seed=3)
    again, again_vecs = expand_catalog(docs, vecs, 500, seed=3)
    assert len(big) == 500 and big_vecs.shape == (500, vecs.shape[1])
    assert big["title"].tolist() == again["title"].tolist()
    assert np.array_equal(big_vecs, again_vecs)
    assert big["item_id"].is_unique and big["popularity"].between(0, 1).all()
    assert np.allclose(np.linalg.norm(big_vecs[len(docs):], axis=1), 1.0, atol=1e-5)


def test_run_search_bench_small(ml_docs_small):
    docs, vecs = ml_docs_small
    big, big_vecs = expand_catalog(docs, vecs, 400, seed=1)
    encoder = TfidfEncoder(TfidfConfig(n_components=vecs.shape[1])).fit(document_texts(big))
    config = SearchConfig(vector=FaissIndexConfig(kind="hnsw", hnsw_m=8))
    result = run_search_bench(big, encoder.encode(document_texts(big)), config, n_queries=20,
                              n_prefixes=50, encoder=encoder)
    assert result.n_documents == 400 and result.n_queries == 20
    assert result.build_s["total"] > 0 and set(result.build_s) >= {"text_index", "vector_index"}
    for stats in (result.hybrid_cold_ms, result.hybrid_warm_ms, result.autocomplete_ms):
        assert 0 < stats["p50"] <= stats["p99"]
    assert result.to_dict()["config"]["vector"]["kind"] == "hnsw"
