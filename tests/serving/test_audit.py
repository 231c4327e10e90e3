"""Audit log: records and the filtered query (user, action, type, time range)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sona.catalog.store import Actor, CatalogStore
from sona.serving.audit import AuditFilter, AuditLog, query_audit


def test_record_and_filter(tmp_path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    t0 = time.time()
    a = log.record("model_promoted", "model", "recs/2", details={"reason": "best ndcg"})
    log.record("api_key_created", "api_key", "1", user_id="alice", ip="127.0.0.1")
    log.record("api_key_created", "api_key", "2", user_id="bob")
    assert a.details == {"reason": "best ndcg"} and a.timestamp >= t0
    assert [r.resource_id for r in log.query(action="api_key_created")] == ["2", "1"]
    assert [r.resource_id for r in log.query(user_id="alice")] == ["1"]
    assert [r.action for r in log.query(resource_type="model")] == ["model_promoted"]
    assert log.query(since=time.time() + 10) == []
    assert len(log.query(since=t0 - 1, until=time.time() + 1)) == 3
    assert len(log.query(limit=1)) == 1


def test_one_query_over_the_serving_and_catalog_logs(tmp_path) -> None:
    serving = AuditLog(f"sqlite:///{tmp_path / 'sona.db'}")
    catalog = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    serving.record("model_swapped", "model", "recs/2", user_id="key:1")
    catalog.audit("content_updated", "content", "42", {"title": "Heat"},
                  actor=Actor(user_id="alice"))
    serving.record("api_key_created", "api_key", "7", user_id="alice")
    rows = query_audit(serving, catalog, AuditFilter())
    assert [(r.log, r.action) for r in rows] == [
        ("serving", "api_key_created"), ("catalog", "content_updated"),
        ("serving", "model_swapped")]  # newest first across both logs
    assert [r.resource_id for r in query_audit(serving, catalog, AuditFilter(
        actor="alice"))] == ["7", "42"]
    assert [r.log for r in query_audit(serving, catalog, AuditFilter(
        resource_type="content"))] == ["catalog"]
    assert query_audit(serving, catalog, AuditFilter(action="content_updated"))[0].details \
        == {"title": "Heat"}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert query_audit(serving, catalog, AuditFilter(since=future)) == []
    assert len(query_audit(serving, catalog, AuditFilter(until=future, limit=2))) == 2
    # an empty window is no rows, not an error (schemathesis, issue 13)
    assert query_audit(serving, catalog, AuditFilter(
        since=future, until=future - timedelta(seconds=1))) == []
    catalog.close()
