"""Shared ingest fixtures: generated feeds over a 300-movie MovieLens subset."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from sona.ingest.feeds import FeedConfig, Feeds, generate_feeds
from sona.ingest.normalizers import normalize
from sona.ingest.records import CanonicalRecord


class CharNgramEncoder:
    """Hashed character-trigram TF vectors, L2-normalised: a real, tiny text encoder.

    Stands in for MiniLM in unit tests (rule 4 needs *an* encoder): typos keep most
    trigrams, so near-duplicate titles get a high cosine.
    """

    model_name = "char3-hash"
    model_version = "1"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for j in range(len(padded) - 2):
                out[i, zlib.crc32(padded[j:j + 3].encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@pytest.fixture(scope="session")
def feeds300(ml100k) -> Feeds:
    """Feeds for 300 sampled movies, seed 42 (about 1,100 raw records)."""
    return generate_feeds(ml100k.catalog, ml100k.interactions.frame, FeedConfig(n_movies=300))


@pytest.fixture(scope="session")
def records300(feeds300) -> list[CanonicalRecord]:
    return [normalize(r) for r in feeds300.records]


@pytest.fixture
def char_encoder() -> CharNgramEncoder:
    return CharNgramEncoder()
