"""Audit log: records and the filtered query (user, action, type, time range)."""

from __future__ import annotations

import time

from sona.serving.audit import AuditLog


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
