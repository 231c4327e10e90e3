"""Search analytics persisted with SQLAlchemy (SPEC §3.4): searches, clicks, CTR, reports.

Tables ``search_events`` (one row per search: normalised query text and its sha256,
sha256 of the user id (anonymised), result count, latency, filters JSON, mode, variant and
the ids shown) and ``search_clicks`` (event, content id, 1-based position). SQLite under the
configured data dir by default (``<data_dir>/search_analytics.db``), any SQLAlchemy URL
otherwise. :meth:`SearchAnalytics.report` answers ``GET /analytics``;
:meth:`SearchAnalytics.impressions` is the learning-to-rank export (one row per shown result,
clicked or not).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Float, ForeignKey, Integer, String, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine, sqlite_url
from sona.errors import UnknownIdError

PERIODS: dict[str, float] = {"1h": 3600.0, "24h": 86_400.0, "7d": 604_800.0,
                             "30d": 2_592_000.0}
DB_NAME = "search_analytics.db"


class _Base(DeclarativeBase):
    pass


class SearchEventRow(_Base):
    """One logged search."""

    __tablename__ = "search_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query: Mapped[str] = mapped_column(String(512), index=True)  # normalised (lower, trimmed)
    query_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the query as typed
    user_id_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result_count: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    mode: Mapped[str] = mapped_column(String(16))
    variant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shown_ids: Mapped[list[str]] = mapped_column(JSON)  # ids on the returned page, in order
    timestamp: Mapped[float] = mapped_column(Float, index=True)  # unix seconds


class SearchClickRow(_Base):
    """One click on a search result."""

    __tablename__ = "search_clicks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_event_id: Mapped[int] = mapped_column(ForeignKey("search_events.id"), index=True)
    content_id: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)  # 1-based rank of the clicked result
    clicked_at: Mapped[float] = mapped_column(Float)


def sha256(text: str) -> str:
    """Hex sha256 of a string (query and user id anonymisation)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_query(query: str) -> str:
    """Lower-cased, trimmed, single-spaced query text (the analytics grouping key)."""
    return " ".join(query.lower().split())


class SearchAnalytics:
    """Query log and click store.

    Args:
        url: SQLAlchemy URL; ``None`` means SQLite at ``<data_dir>/search_analytics.db``.
        data_dir: folder of the default SQLite file.
    """

    def __init__(self, url: str | None = None, *, data_dir: str | Path = "datasets/search"
                 ) -> None:
        self.url = url or sqlite_url(Path(data_dir) / DB_NAME)
        self.engine = make_engine(self.url)
        _Base.metadata.create_all(self.engine)

    def log_search(self, query: str, *, result_count: int, latency_ms: float,
                   user_id: str | None = None, filters: dict[str, Any] | None = None,
                   mode: str = "hybrid", variant: str | None = None,
                   shown_ids: list[Any] | None = None, timestamp: float | None = None) -> int:
        """Record one search; returns its event id (for ``log_click``)."""
        row = {
            "query": normalize_query(query)[:512], "query_hash": sha256(query),
            "user_id_hash": sha256(str(user_id)) if user_id is not None else None,
            "result_count": int(result_count), "latency_ms": float(latency_ms),
            "filters": dict(filters or {}), "mode": mode, "variant": variant,
            "shown_ids": [str(i) for i in (shown_ids or [])],
            "timestamp": time.time() if timestamp is None else float(timestamp)}
        # one Core INSERT in its own transaction, committed before the id is returned (a
        # click may follow at once): the same row as an ORM add/flush without the unit of
        # work, which was most of this call's cost on every search (issue 12 profile)
        with self.engine.begin() as conn:
            key = conn.execute(insert(SearchEventRow), row).inserted_primary_key
        if key is None:  # every dialect SONA runs on returns the new id
            raise RuntimeError("the database returned no id for the logged search")
        return int(key[0])

    def log_click(self, search_event_id: int, content_id: Any, position: int, *,
                  timestamp: float | None = None) -> int:
        """Record a click on result ``position`` (1-based) of a logged search.

        Raises:
            UnknownIdError: no search event with that id.
            ValueError: position below 1.
        """
        if int(position) < 1:
            raise ValueError(f"click position is 1-based, got {position}")
        with Session(self.engine) as sess, sess.begin():
            if sess.get(SearchEventRow, int(search_event_id)) is None:
                raise UnknownIdError("search event", [search_event_id])
            row = SearchClickRow(search_event_id=int(search_event_id),
                                 content_id=str(content_id), position=int(position),
                                 clicked_at=time.time() if timestamp is None else timestamp)
            sess.add(row)
            sess.flush()
            return int(row.id)

    def query_counts(self, limit: int = 1000) -> dict[str, int]:
        """Most frequent non-empty logged queries -> count (seeds autocomplete)."""
        stmt = (select(SearchEventRow.query, func.count()).where(SearchEventRow.result_count > 0)
                .group_by(SearchEventRow.query).order_by(func.count().desc()).limit(limit))
        with Session(self.engine) as sess:
            return {q: int(n) for q, n in sess.execute(stmt)}

    def _frames(self, since: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        with Session(self.engine) as sess:
            events = pd.DataFrame(
                sess.execute(select(SearchEventRow.id, SearchEventRow.query,
                                    SearchEventRow.result_count, SearchEventRow.latency_ms)
                             .where(SearchEventRow.timestamp >= since)).all(),
                columns=["id", "query", "result_count", "latency_ms"])
            clicks = pd.DataFrame(
                sess.execute(select(SearchClickRow.search_event_id)
                             .join(SearchEventRow,
                                   SearchEventRow.id == SearchClickRow.search_event_id)
                             .where(SearchEventRow.timestamp >= since)).all(),
                columns=["search_event_id"])
        return events, clicks

    def report(self, period: str = "24h", limit: int = 10, *, now: float | None = None
               ) -> dict[str, Any]:
        """``GET /analytics`` body for the last ``period`` (1h, 24h, 7d, 30d).

        Raises:
            ValueError: unknown period or a limit outside 1..1000.
        """
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}; expected one of {list(PERIODS)}")
        if not 1 <= int(limit) <= 1000:
            raise ValueError(f"limit must be in 1..1000, got {limit}")
        since = (time.time() if now is None else now) - PERIODS[period]
        events, clicks = self._frames(since)
        total = len(events)
        out: dict[str, Any] = {"period": period, "total_searches": total,
                               "unique_queries": int(events["query"].nunique()),
                               "avg_latency_ms": 0.0, "p95_latency_ms": 0.0,
                               "zero_result_rate": 0.0, "click_through_rate": 0.0,
                               "top_queries": [], "zero_result_queries": []}
        if total == 0:
            return out
        lat = events["latency_ms"].to_numpy(np.float64)
        zero = events["result_count"] == 0
        out.update(
            avg_latency_ms=round(float(lat.mean()), 3),
            p95_latency_ms=round(float(np.percentile(lat, 95)), 3),
            zero_result_rate=round(float(zero.mean()), 6),
            click_through_rate=round(clicks["search_event_id"].nunique() / total, 6),
        )
        grouped = events.groupby("query").agg(search_count=("id", "size"),
                                              avg_results=("result_count", "mean"),
                                              avg_latency_ms=("latency_ms", "mean"))
        grouped = grouped.reset_index().sort_values(["search_count", "query"],
                                                    ascending=[False, True])
        out["top_queries"] = [
            {"query": r.query, "search_count": int(r.search_count),
             "avg_results": round(float(r.avg_results), 3),
             "avg_latency_ms": round(float(r.avg_latency_ms), 3)}
            for r in grouped.head(limit).itertuples(index=False)]
        zeros = events[zero].groupby("query").size().reset_index(name="search_count")
        zeros = zeros.sort_values(["search_count", "query"], ascending=[False, True])
        out["zero_result_queries"] = [{"query": r.query, "search_count": int(r.search_count)}
                                      for r in zeros.head(limit).itertuples(index=False)]
        return out

    def impressions(self) -> pd.DataFrame:
        """One row per shown result: ``event_id, query, content_id, position, clicked``.

        The learning-to-rank training frame (clicks as labels, position for debiasing).
        """
        with Session(self.engine) as sess:
            events = sess.execute(select(SearchEventRow.id, SearchEventRow.query,
                                         SearchEventRow.shown_ids)).all()
            clicked = {(int(e), c) for e, c in sess.execute(
                select(SearchClickRow.search_event_id, SearchClickRow.content_id))}
        rows = [(e, q, cid, pos, (e, cid) in clicked)
                for e, q, shown in events for pos, cid in enumerate(shown, start=1)]
        return pd.DataFrame(rows, columns=["event_id", "query", "content_id", "position",
                                           "clicked"])


__all__ = ["PERIODS", "SearchAnalytics", "normalize_query", "sha256"]
