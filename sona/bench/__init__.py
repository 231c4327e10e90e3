"""Benchmarks: pure functions returning results; the CLI (``sona bench``) prints and saves."""

from sona.bench.ann import AnnConfig, run_ann
from sona.bench.overhead import OverheadResult, run_overhead
from sona.bench.scaling import ScalingConfig, run_scaling

__all__ = ["AnnConfig", "OverheadResult", "ScalingConfig", "run_ann", "run_overhead",
           "run_scaling"]
