"""Assignment hash: known values, stability across processes, allocation on 100k users."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from sona.ab.assignment import (
    bucket,
    buckets,
    check_weights,
    choose_variant,
    choose_variants,
    variant_ranges,
)


def test_bucket_is_sha256_of_salt_and_user() -> None:
    digest = hashlib.sha256(b"exp-1:user-42").digest()
    assert bucket("exp-1", "user-42") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0.0 <= bucket("exp-1", "user-42") < 1.0
    # the experiment is part of the hash (the original ignored it)
    assert bucket("exp-1", "user-42") != bucket("exp-2", "user-42")


def test_vectorised_buckets_equal_scalar() -> None:
    users = [f"u{i}" for i in range(500)]
    assert np.array_equal(buckets("s", users), [bucket("s", u) for u in users])


def test_same_variant_in_another_process() -> None:
    users = [f"user-{i}" for i in range(50)]
    here = [choose_variant("salt-x", u, [0.2, 0.3, 0.5], 0.9) for u in users]
    code = ("import json,sys; from sona.ab.assignment import choose_variant; "
            "print(json.dumps([choose_variant('salt-x', u, [0.2, 0.3, 0.5], 0.9) "
            "for u in json.loads(sys.argv[1])]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(users)], check=True,
                         capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout) == here


def test_allocation_holds_on_100k_users() -> None:
    n, weights, traffic = 100_000, [0.5, 0.3, 0.2], 0.8
    chosen = choose_variants(buckets("alloc-test", (f"u{i}" for i in range(n))), weights, traffic)
    shares = np.array([(chosen == k).mean() for k in range(3)])
    expected = traffic * np.array(weights)
    # 5 binomial standard deviations (~0.008 at p = 0.4): a failure is a real bias
    tol = 5 * np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(shares - expected) < tol), (shares, expected)
    assert abs((chosen == -1).mean() - (1 - traffic)) < 5 * np.sqrt(0.16 / n)
    counts = np.bincount(chosen[chosen >= 0], minlength=3)
    assert sps.chisquare(counts, counts.sum() * np.array(weights)).pvalue > 0.001


def test_more_traffic_only_adds_users() -> None:
    u = buckets("ramp", (f"u{i}" for i in range(20_000)))
    low = choose_variants(u, [0.5, 0.5], 0.2)
    high = choose_variants(u, [0.5, 0.5], 0.6)
    kept = low >= 0
    assert np.array_equal(high[kept], low[kept])
    assert (high >= 0).sum() > 2.5 * kept.sum()


def test_experiments_are_independent() -> None:
    users = [f"u{i}" for i in range(20_000)]
    a = choose_variants(buckets("exp-a", users), [0.5, 0.5], 1.0)
    b = choose_variants(buckets("exp-b", users), [0.5, 0.5], 1.0)
    table = np.histogram2d(a, b, bins=2)[0]
    assert sps.chi2_contingency(table).pvalue > 0.001


def test_ranges_tile_the_allocation() -> None:
    ranges = variant_ranges([0.25, 0.75], 0.5)
    assert ranges.tolist() == [[0.0, 0.125], [0.25, 0.625]]
    assert choose_variants(np.array([0.0, 0.124, 0.125, 0.3, 0.7]), [0.25, 0.75], 0.5
                           ).tolist() == [0, 0, -1, 1, -1]


@pytest.mark.parametrize(("weights", "traffic", "message"), [
    ([1.0], 1.0, "at least 2 variants"),
    ([0.5, 0.6], 1.0, "sum to 1.0"),
    ([1.5, -0.5], 1.0, ">= 0"),
    ([0.5, float("nan")], 1.0, "finite"),
    ([0.5, 0.5], 0.0, "traffic_allocation"),
    ([0.5, 0.5], 1.5, "traffic_allocation"),
])
def test_invalid_arms_are_named(weights: list[float], traffic: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_weights(weights, traffic)
