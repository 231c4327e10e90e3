import json

import pytest

from sona.bench import load
from sona.bench.load import UNIQUE, Case, lua_script, parse_wrk
from sona.bench.load_cases import ENDPOINTS, serving_cases
from sona.errors import SonaError


def test_missing_wrk_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load.shutil, "which", lambda name: None)
    with pytest.raises(SonaError, match="apt-get install -y wrk"):
        load.find_wrk()


def test_lua_script_rotates_entries_and_salts_fresh_values() -> None:
    case = Case("recs", "/api/v1/recommendations",
                bodies=['{"user_id": "1"}', '{"user_id": "new-' + UNIQUE + '"}'])
    script = lua_script(case, salt="m8")
    assert '"{\\"user_id\\": \\"1\\"}"' in script  # JSON escaped into a Lua string
    assert 'local salt = "m8"' in script and 'local method = "POST"' in script
    assert "SONA_WRK" in script and "non2xx" in script
    assert case.cache_hit_share == 0.5


def test_get_case_needs_paths() -> None:
    with pytest.raises(ValueError, match="needs paths"):
        lua_script(Case("x", "/x", method="GET"), salt="s")


def test_parse_wrk_counts_non2xx_and_socket_errors_as_errors() -> None:
    line = ('SONA_WRK {"requests":2000,"duration_us":2000000,"bytes":1,"connect":0,"read":1,'
            '"write":0,"status":3,"timeout":2,"non2xx":3,"p50_us":1500.0,"p95_us":3000.0,'
            '"p99_us":4000.0,"max_us":90000.0,"mean_us":1600.0}\n')
    stats = parse_wrk("Running 2s test\n" + line, endpoint="ping", connections=8)
    assert stats.requests == 2000 and stats.rps == pytest.approx(1000.0)
    assert stats.errors == 3 + 1 + 2 and stats.non2xx == 3
    assert (stats.p50_ms, stats.p99_ms, stats.max_ms) == (1.5, 4.0, 90.0)
    json.dumps(stats.to_dict())
    with pytest.raises(SonaError, match="no result line"):
        parse_wrk("unable to connect", endpoint="ping", connections=8)


def test_serving_cases_mix_cache_hits_and_misses() -> None:
    users, items = [str(u) for u in range(1, 91)], [str(i) for i in range(1, 31)]
    cases = {c.name: c for c in serving_cases(users, items, ["Toy Story (1995)", "Heat (1995)"],
                                              miss_share=0.1)}
    assert len(cases) == len(ENDPOINTS)
    recs = cases["recommendations"]
    assert recs.cache_hit_share == pytest.approx(0.9)
    known = {json.loads(b)["user_id"] for b in recs.bodies if UNIQUE not in b}
    assert known == set(users)  # every known user is rotated
    assert cases["search (cold cache)"].cache_hit_share == 0.0
    assert cases["search (warm cache)"].cache_hit_share == 1.0
    assert all(p.startswith("/api/v1/search/autocomplete?q=")
               for p in cases["search/autocomplete"].paths)
    with pytest.raises(ValueError, match="unknown endpoint"):
        serving_cases(users, items, [], endpoints=["nope"])
