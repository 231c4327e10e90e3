"""ops/: the Prometheus alert rules pass promtool (check + unit tests) and every metric the
rules and the Grafana dashboard name is one the real service exports at /metrics.

promtool comes from Debian's ``prometheus`` package; without it these tests skip, unless
``SONA_REQUIRE_PROMTOOL=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from serving_fixtures import RunningServer, get, post

OPS = Path(__file__).resolve().parents[2] / "ops"
RULES = OPS / "prometheus" / "sona-alerts.yml"
RULE_TESTS = OPS / "prometheus" / "sona-alerts.test.yml"
DASHBOARD = OPS / "grafana" / "sona-serving.json"
METRIC = re.compile(r"\b((?:sona|bentoml)_[a-z_]+)")

pytestmark = pytest.mark.slow


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("SONA_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool is required (SONA_REQUIRE_PROMTOOL=1): apt-get install "
                        "prometheus")
        pytest.skip("promtool not installed (Debian package prometheus)")
    return found


def _named_metrics() -> set[str]:
    exprs = [RULES.read_text()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return {m for e in exprs for m in METRIC.findall(e)}


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    unit = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], capture_output=True,
                          text=True, cwd=RULE_TESTS.parent)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def test_every_metric_named_is_exported(server: RunningServer) -> None:
    # traffic that touches each path once: a warm user, a cold user, a search
    assert post(f"{server.url}/api/v1/recommendations", {"user_id": "1"})[0] == 200
    assert post(f"{server.url}/api/v1/recommendations", {"user_id": "ops-cold"})[0] == 200
    status, text = get(f"{server.url}/metrics")
    assert status == 200
    exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
    named = _named_metrics()
    assert {"sona_fallback_total", "sona_request_duration_seconds_bucket"} <= named
    assert named - exported == set(), sorted(exported)


def test_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "sona-serving" and len(dashboard["panels"]) >= 6
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] and p["datasource"]["type"] == "prometheus"
               for p in dashboard["panels"])
