"""Dataset loaders: one module per source."""

from sona.data.sources.movielens import MovieLens, fetch_ml100k, load_ml100k, verify_ml100k

__all__ = ["MovieLens", "fetch_ml100k", "load_ml100k", "verify_ml100k"]
