"""Benchmarks: pure functions returning results; the CLI (``sona bench``) prints and saves."""

from sona.bench.overhead import OverheadResult, run_overhead

__all__ = ["OverheadResult", "run_overhead"]
