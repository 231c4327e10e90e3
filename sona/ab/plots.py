"""Figures of an :class:`~sona.ab.analysis.ABReport` and the PNG + HTML report files.

Four figures, all drawn from the report alone: per-variant metric means with intervals,
relative uplift per treatment (raw Welch vs CUPED), Beta posteriors of the conversion
rates, and the always-valid p-value across the replayed looks. :func:`write_report` saves
``report.json``, one PNG per figure and a self-contained ``report.html`` (tables plus the
PNGs inlined as base64) through :mod:`sona.io`.
"""

from __future__ import annotations

import base64
import html
import io as _bytes_io
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats as sps  # noqa: E402

from sona import io  # noqa: E402
from sona.ab.analysis import ABReport  # noqa: E402


def _means(report: ABReport) -> Figure:
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    z = float(sps.norm.ppf(1 - report.alpha / 2))
    names = [v.name for v in report.variants]
    means = [v.mean for v in report.variants]
    half = [z * v.sd / np.sqrt(v.users) if v.users else 0.0 for v in report.variants]
    ax.errorbar(means, range(len(names)), xerr=half, fmt="o", capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"{report.metric} per user (mean, {1 - report.alpha:.0%} CI)")
    ax.set_title(f"{report.experiment['name']}: {report.metric} by variant")
    fig.tight_layout()
    return fig


def _uplift(report: ABReport) -> Figure:
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    rows = []
    for c in report.comparisons:
        if c.welch is not None:
            rows.append((f"{c.variant} (raw)", c.welch))
        if c.cuped is not None:
            rows.append((f"{c.variant} (CUPED)", c.cuped.test))
    for i, (_, test) in enumerate(rows):
        ax.errorbar([100 * test.relative_uplift], [i], capsize=4, fmt="o",
                    xerr=[[100 * (test.relative_uplift - test.relative_ci_low)],
                          [100 * (test.relative_ci_high - test.relative_uplift)]])
    ax.axvline(0.0, color="grey", lw=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    control = report.comparisons[0].control if report.comparisons else "control"
    ax.set_xlabel(f"relative uplift vs {control} (%)")
    ax.set_title("Treatment effect")
    fig.tight_layout()
    return fig


def _posteriors(report: ABReport) -> Figure:
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    if report.comparisons:
        first = report.comparisons[0].bayes
        arms = [(report.comparisons[0].control, first.control_alpha, first.control_beta)]
        arms += [(c.variant, c.bayes.treatment_alpha, c.bayes.treatment_beta)
                 for c in report.comparisons]
        lo = min(sps.beta.ppf(1e-4, a, b) for _, a, b in arms)
        hi = max(sps.beta.ppf(1 - 1e-4, a, b) for _, a, b in arms)
        x = np.linspace(lo, hi, 400)
        for name, a, b in arms:
            ax.plot(x, sps.beta.pdf(x, a, b), label=name)
        ax.legend()
    ax.set_xlabel(f"conversion rate (users with {report.metric} > 0)")
    ax.set_title("Posterior of the conversion rate (Beta-binomial)")
    fig.tight_layout()
    return fig


def _sequential(report: ABReport) -> Figure:
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    for c in report.comparisons:
        if c.sequential is not None:
            ax.plot(c.sequential.looks, c.sequential.p_values, marker=".", label=c.variant)
    ax.axhline(report.alpha, color="red", lw=1, ls="--", label=f"alpha = {report.alpha}")
    ax.set_yscale("log")
    ax.set_xlabel("users exposed at the look")
    ax.set_ylabel("always-valid p-value")
    ax.set_title("Sequential guard (mSPRT): safe to peek")
    ax.legend()
    fig.tight_layout()
    return fig


def report_figures(report: ABReport) -> dict[str, Figure]:
    """``{"means", "uplift", "posterior", "sequential"}`` figures of the report."""
    return {"means": _means(report), "uplift": _uplift(report),
            "posterior": _posteriors(report), "sequential": _sequential(report)}


def _png(fig: Figure) -> bytes:
    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r.values()) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def comparison_rows(report: ABReport) -> list[dict[str, Any]]:
    """One flat row per treatment: the numbers a reader looks at first."""
    rows = []
    for c in report.comparisons:
        test = c.cuped.test if c.cuped is not None else c.welch
        rows.append({
            "variant": c.variant, "vs": c.control,
            "uplift": None if test is None else test.relative_uplift,
            "ci_low": None if test is None else test.relative_ci_low,
            "ci_high": None if test is None else test.relative_ci_high,
            "p_value": None if test is None else test.p_value,
            "cuped_variance_factor": None if c.cuped is None else c.cuped.variance_reduction,
            "p_conversion": None if c.proportion is None else c.proportion.p_value,
            "p_beat_control": c.bayes.p_beat_control,
            "expected_loss": c.bayes.expected_loss_treatment,
            "always_valid_p": None if c.sequential is None else c.sequential.always_valid_p,
            "significant": c.significant})
    return rows


def render_html(report: ABReport, pngs: dict[str, bytes]) -> str:
    """A self-contained HTML page: summary, SRM verdict, tables and inlined figures."""
    name = html.escape(str(report.experiment["name"]))
    srm = report.srm
    verdict = (f"<p class='bad'>Sample-ratio mismatch: p = {srm.p_value:.3g} &lt; "
               f"{srm.threshold}. The split is broken; do not trust these results.</p>"
               if srm.flagged else
               f"<p class='ok'>No sample-ratio mismatch (p = {srm.p_value:.3g}).</p>")
    images = "".join(f"<h3>{html.escape(k)}</h3><img src='data:image/png;base64,"
                     f"{base64.b64encode(v).decode()}'/>" for k, v in pngs.items())
    stamp = datetime.fromtimestamp(report.computed_at, UTC).isoformat(timespec="seconds")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>A/B report: {name}"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            ".bad{color:#b00;font-weight:bold}.ok{color:#060}</style></head><body>"
            f"<h1>A/B report: {name}</h1><p>metric <b>{html.escape(report.metric)}</b>, "
            f"alpha {report.alpha}, status {html.escape(str(report.experiment['status']))}, "
            f"computed {stamp}</p>{verdict}<h2>Variants</h2>"
            f"{_table([asdict(v) for v in report.variants])}"
            f"<h2>Comparisons</h2>{_table(comparison_rows(report))}<h2>Figures</h2>{images}"
            "</body></html>")


def write_report(report: ABReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``<figure>.png`` and ``report.html``; returns their paths."""
    out = Path(out_dir)
    pngs = {k: _png(fig) for k, fig in report_figures(report).items()}
    paths: dict[str, Path] = {"json": out / "report.json"}
    io.write_json(paths["json"], report.to_dict())
    for key, data in pngs.items():
        paths[key] = out / f"{key}.png"
        io.write_bytes_atomic(paths[key], data)
    paths["html"] = out / "report.html"
    io.write_text(paths["html"], render_html(report, pngs))
    return paths


__all__ = ["comparison_rows", "render_html", "report_figures", "write_report"]
