"""Cold-start evaluation on held-out users and held-out items (SPEC §2.8, issue 3 item 4).

Cold users (:func:`evaluate_cold_users`): ``cold_split(by="user")`` holds out every
interaction of a share of the users. A held-out user's first ``onboarding_events`` events
(by time; SPEC: a user is cold while they have <= 5) stand for onboarding: they give the
simulated signup genres (the user's most frequent genres among them) and are excluded
from the lists; the user's remaining interactions are the ground truth. Each SPEC tier is
scored on its own, on the same users and ground truth: global popularity, trending (last
30 days), demographic segments (age band, region, gender, occupation with backoff) and
signup genres.

Cold items (:func:`evaluate_cold_items`): ``cold_split(by="item")`` holds out every
interaction with a share of the items. Each user with a held-out interaction ranks the
held-out items only, from content alone (:class:`sona.models.cold_start.ContentColdItems`):
MiniLM or TF-IDF text embeddings of title, year and genres, or the genre one-hot; a seeded
random order is the floor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from sona.data.sources import MovieLens
from sona.data.splits import cold_split
from sona.genres import GENRES, movielens_genres
from sona.metrics import evaluate
from sona.models.cold_start import ColdProfile, ColdStart, ColdStartConfig, ContentColdItems
from sona.models.side import ItemSideData
from sona.ranking.topk import topk
from sona.types import Recommendations

log = logging.getLogger(__name__)

METRICS = ["ndcg", "precision", "recall", "map"]


@dataclass(frozen=True, slots=True)
class ColdEvalConfig:
    """Cold-start evaluation settings."""

    # share of users (items) held out
    fraction: float = 0.1
    # seed of the cold split
    seed: int = 42
    # list length and metric cut-off
    k: int = 10
    # a held-out user's first events used as onboarding (SPEC: cold while <= 5 events)
    onboarding_events: int = 5
    # signup genres simulated per held-out user
    signup_genres: int = 3
    # text encoders of the cold-item evaluation
    encoders: tuple[Literal["minilm", "tfidf"], ...] = ("minilm", "tfidf")
    # MiniLM embedding cache folder (None: memory only)
    cache_dir: str | None = "datasets/cache/embeddings"


def _summary(recs: Recommendations, users: np.ndarray, truth: Any, k: int) -> dict[str, float]:
    per_query = evaluate(recs, users, truth, k=k, metrics=METRICS)
    return {m: float(np.nanmean(v)) for m, v in per_query.items()}


def evaluate_cold_users(ml: MovieLens, config: ColdEvalConfig = ColdEvalConfig()
                        ) -> dict[str, dict[str, float]]:
    """Metrics of each cold-start tier for held-out users; ``{tier: {metric: mean}}``."""
    split = cold_split(ml.interactions, by="user", fraction=config.fraction, seed=config.seed)
    frame = split.test.frame.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    rank = frame.groupby("user_id", sort=False).cumcount().to_numpy()
    onboarding = frame.loc[rank < config.onboarding_events]
    truth_frame = frame.loc[rank >= config.onboarding_events]
    users = np.sort(truth_frame["user_id"].unique())
    truth = ml.interactions.with_frame(truth_frame)
    model = ColdStart(ColdStartConfig(side_source=None), user_side=ml.users,
                      side=ItemSideData(ml.catalog)).fit(split.train)
    demo = ml.users.set_index("user_id").loc[users]
    seen = [onboarding.loc[onboarding["user_id"] == u, "item_id"].to_numpy() for u in users]
    genres = _signup_genres(onboarding, ml, users, config.signup_genres)
    ages = pd.to_numeric(demo["age"], errors="coerce")
    demographic = [ColdProfile(age=None if pd.isna(a) else int(a), gender=str(g),
                               occupation=str(o), zip_code=str(z))
                   for a, g, o, z in zip(ages, demo["gender"], demo["occupation"],
                                         demo["zip_code"], strict=True)]
    tiers = {
        "trending": [ColdProfile() for _ in users],
        "demographic": demographic,
        "signup_genres": [ColdProfile(signup_genres=g) for g in genres],
    }
    out: dict[str, dict[str, float]] = {}
    pop = np.tile(model.popularity_, (len(users), 1))
    excl = _exclusion(model, seen)
    idx, scores = topk(pop, config.k, exclude=excl)
    out["popularity"] = _summary(Recommendations(model.items_.ids(idx), scores), users, truth,
                                 config.k)
    for name, profiles in tiers.items():
        cold = model.recommend_cold(profiles, config.k, exclude=list(seen))
        expected = {"trending": "trending", "demographic": "demographic",
                    "signup_genres": "genres"}[name]
        share = float(np.mean([s == expected for s in cold.sources]))
        out[name] = {**_summary(cold.recommendations, users, truth, config.k),
                     "tier_share": share}
    for values in out.values():
        values["n_users"] = float(len(users))
    log.info("cold users: %s", {k: round(v["ndcg"], 4) for k, v in out.items()})
    return out


def _exclusion(model: ColdStart, seen: list[np.ndarray]) -> Any:
    import scipy.sparse as sp

    rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(seen)])
    cols = model.items_.numbers(np.concatenate(seen), missing="negative")
    keep = cols >= 0
    return sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])),
                         shape=(len(seen), len(model.items_)))


def _signup_genres(onboarding: pd.DataFrame, ml: MovieLens, users: np.ndarray,
                   n: int) -> list[tuple[str, ...]]:
    """The ``n`` most frequent canonical genres of each user's onboarding items."""
    genres_of = {row.item_id: movielens_genres(row.genres)
                 for row in ml.catalog.frame.itertuples(index=False)}
    out = []
    for u in users:
        counts = np.zeros(len(GENRES))
        for item in onboarding.loc[onboarding["user_id"] == u, "item_id"]:
            for g in genres_of.get(item, []):
                counts[GENRES.index(g)] += 1
        order = np.argsort(-counts, kind="stable")[:n]
        out.append(tuple(GENRES[j] for j in order if counts[j] > 0))
    return out


def item_vectors(ml: MovieLens, kind: str, config: ColdEvalConfig) -> np.ndarray:
    """Content vectors of every catalog item (catalog order): text embeddings or genres."""
    from sona.embeddings import catalog_texts

    if kind == "genres":
        vectors = np.zeros((len(ml.catalog), len(GENRES)))
        for i, labels in enumerate(ml.catalog.frame["genres"]):
            for g in movielens_genres(labels):
                vectors[i, GENRES.index(g)] = 1.0
        return vectors
    texts = catalog_texts(ml.catalog)
    if kind == "minilm":
        from sona.embeddings import EncoderConfig, TextEncoder

        encoder = TextEncoder(EncoderConfig(cache_dir=config.cache_dir, show_progress=False))
        return np.asarray(encoder.encode(texts), dtype=np.float64)
    if kind == "tfidf":
        from sona.embeddings import TfidfEncoder

        return np.asarray(TfidfEncoder().fit(texts).encode(texts), dtype=np.float64)
    raise ValueError(f"unknown item vector kind {kind!r}; expected minilm, tfidf or genres")


def evaluate_cold_items(ml: MovieLens, config: ColdEvalConfig = ColdEvalConfig()
                        ) -> dict[str, dict[str, float]]:
    """Metrics of content scorers ranking held-out items; ``{method: {metric: mean}}``."""
    split = cold_split(ml.interactions, by="item", fraction=config.fraction, seed=config.seed)
    train, test = split.train, split.test
    users = np.sort(np.intersect1d(test.users.ids_array, train.users.ids_array))
    user_idx = train.users.numbers(users)
    cold_ids = np.asarray(test.items.ids_array)
    catalog_ids = ml.catalog.frame["item_id"].to_numpy()
    position = {item: i for i, item in enumerate(catalog_ids.tolist())}
    warm_rows = [position[i] for i in train.items.ids_array.tolist()]
    cold_rows = [position[i] for i in cold_ids.tolist()]
    out: dict[str, dict[str, float]] = {}
    for kind in ("genres", *config.encoders):
        vectors = item_vectors(ml, kind, config)
        scorer = ContentColdItems().fit(train.matrix("weight"), vectors[warm_rows])
        scores = scorer.score(user_idx, vectors[cold_rows])
        idx, top = topk(scores, config.k)
        out[kind] = _summary(Recommendations(cold_ids[idx], top), users, test, config.k)
    rng = np.random.default_rng(config.seed)
    idx, top = topk(rng.random((len(users), len(cold_ids))), config.k)
    out["random"] = _summary(Recommendations(cold_ids[idx], top), users, test, config.k)
    for values in out.values():
        values["n_users"] = float(len(users))
        values["n_cold_items"] = float(len(cold_ids))
    log.info("cold items: %s", {k: round(v["ndcg"], 4) for k, v in out.items()})
    return out


__all__ = ["ColdEvalConfig", "evaluate_cold_items", "evaluate_cold_users", "item_vectors"]
