"""``sona ab``: analyse A/B experiments, simulate traffic against a server, migrate the store.

The store is found like the server finds it: ``--db URL``, else the serving config's
``experiments`` section (``--config``, else ``$SONA_SERVING_CONFIG``), else
``$SONA_DB_URL``, else ``experiments.db`` next to the serving database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sona.cli import app

if TYPE_CHECKING:
    from sona.ab.analysis import ABReport
    from sona.ab.repository import ExperimentRepository
    from sona.serving.app import ServingConfig

ab_app = typer.Typer(help="A/B experiments: report, simulate, list, migrate.",
                     no_args_is_help=True)
app.add_typer(ab_app, name="ab")

DbOpt = Annotated[str | None, typer.Option(
    "--db", help="SQLAlchemy URL of the A/B store (default: as the server finds it)")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="serving YAML (default: $SONA_SERVING_CONFIG, else built-in defaults)")]


def _serving(config: Path | None) -> ServingConfig:
    from sona.serving.app import load_serving_config

    return load_serving_config(config)


def _repo(db: str | None, config: Path | None) -> ExperimentRepository:
    from sona.ab.repository import ExperimentRepository

    cfg = _serving(config)
    data_dir = cfg.experiments.data_dir or str(Path(cfg.database).resolve().parent)
    return ExperimentRepository(db or cfg.experiments.url, data_dir=data_dir)


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:+.2f}%"


def _p(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.3g}"


def print_report(report: ABReport, console: Console) -> None:
    """Variants, SRM verdict and comparisons as rich tables (fits 80 columns)."""
    console.print(f"[bold]{report.experiment['name']}[/] ({report.experiment['status']}), "
                  f"metric [bold]{report.metric}[/], alpha {report.alpha}")
    table = Table("variant", "users", "exposures", "conv. rate", "mean/user", "sd",
                  "pre/user")
    for v in report.variants:
        table.add_row(v.name, str(v.users), str(v.exposures), f"{v.conversion_rate:.4f}",
                      f"{v.mean:.4f}", f"{v.sd:.4f}", f"{v.pre_mean:.4f}")
    console.print(table)
    srm = report.srm
    console.print(f"[red bold]SRM: sample-ratio mismatch, p = {srm.p_value:.3g} < "
                  f"{srm.threshold}: the split is broken, do not trust the results[/]"
                  if srm.flagged else
                  f"SRM check passed (chi2 = {srm.chi2:.3f}, p = {srm.p_value:.3g})")
    cmp_table = Table(f"vs {report.comparisons[0].control}" if report.comparisons else "",
                      *[c.variant for c in report.comparisons])
    rows: list[tuple[str, list[str]]] = [(label, []) for label in (
        "uplift (Welch)", "  CI", "  p", "uplift (CUPED)", "  CI", "  p",
        "CUPED variance factor", "conversion p (z-test)", "P(beat control)",
        "expected loss", "always-valid p", "significant")]
    for c in report.comparisons:
        w, cu = c.welch, (c.cuped.test if c.cuped is not None else None)
        cells = [
            _pct(w.relative_uplift if w else None),
            f"[{_pct(w.relative_ci_low)}, {_pct(w.relative_ci_high)}]" if w else "-",
            _p(w.p_value if w else None), _pct(cu.relative_uplift if cu else None),
            f"[{_pct(cu.relative_ci_low)}, {_pct(cu.relative_ci_high)}]" if cu else "-",
            _p(cu.p_value if cu else None),
            _p(c.cuped.variance_reduction if c.cuped else None),
            _p(c.proportion.p_value if c.proportion else None),
            f"{c.bayes.p_beat_control:.3f}", f"{c.bayes.expected_loss_treatment:.4g}",
            _p(c.sequential.always_valid_p if c.sequential else None),
            "yes" if c.significant else "no"]
        for (_, row), cell in zip(rows, cells, strict=True):
            row.append(cell)
    for label, cells in rows:
        cmp_table.add_row(label, *cells)
    console.print(cmp_table)
    for c in report.comparisons:
        if c.cuped is not None:
            console.print(f"CUPED variance-reduction factor ({c.variant}): "
                          f"{c.cuped.variance_reduction:.3f} (rho = {c.cuped.correlation:.3f})")


@ab_app.command("report")
def report_command(
    experiment: Annotated[str, typer.Argument(help="experiment id or name")],
    metric: Annotated[str | None, typer.Option(help="metric (default: the primary)")] = None,
    alpha: Annotated[float, typer.Option(help="test level")] = 0.05,
    mde: Annotated[float, typer.Option(help="relative MDE (sets the mSPRT scale)")] = 0.05,
    out: Annotated[Path | None, typer.Option(
        help="folder for report.json/.html and PNGs (default: experiments/ab/<name>)")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow",
                                         help="log the report to MLflow")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    db: DbOpt = None, config: ConfigOpt = None,
) -> None:
    """Analyse EXPERIMENT: counts, SRM, z/Welch/CUPED, Bayesian, sequential; plots, MLflow."""
    from sona.ab.analysis import analyze
    from sona.ab.plots import write_report

    repo = _repo(db, config)
    report = analyze(repo, experiment, metric=metric, alpha=alpha, mde=mde)
    name = str(report.experiment["name"])
    folder = out or Path("experiments") / "ab" / name
    files = write_report(report, folder)
    console = Console()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, console)
        console.print(f"report: {files['html']}")
    if mlflow:
        from sona.ab.report import log_report

        cfg = _serving(config)
        mlflow_id, run_id = log_report(report, cfg.tracking, model_name=cfg.model_name,
                                       files=files, default_alias=cfg.alias)
        repo.set_mlflow_experiment(report.experiment["id"], mlflow_id)
        if not as_json:
            console.print(f"MLflow: experiment ab/{name} ({mlflow_id}), run {run_id}")
    repo.close()


@ab_app.command("list")
def list_command(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Experiments with status, traffic and variants."""
    repo = _repo(db, config)
    table = Table("name", "id", "status", "traffic", "variants (weight)", "primary metric")
    for e in repo.list_experiments():
        table.add_row(e.name, e.id, e.status, f"{e.traffic_allocation:.2f}",
                      ", ".join(f"{v.name} ({v.weight:g})" for v in e.variants),
                      e.primary_metric)
    Console().print(table)
    repo.close()


@ab_app.command("migrate")
def migrate_command(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Create or upgrade the A/B store's schema (Alembic) and print its revision."""
    repo = _repo(db, config)  # opening migrates to head
    from sona.ab.migrations import current_revision

    Console().print(f"{repo.engine.url.render_as_string()}: revision "
                    f"{current_revision(repo.engine)}")
    repo.close()


@ab_app.command("simulate")
def simulate_command(
    url: Annotated[str | None, typer.Option(
        help="running server (default: start a local ML-100K demo server)")] = None,
    key: Annotated[str | None, typer.Option(help="admin API key of that server")] = None,
    users: Annotated[int, typer.Option(help="synthetic users")] = 2000,
    sessions: Annotated[int, typer.Option(help="requests per user in the experiment")] = 3,
    pre_sessions: Annotated[int, typer.Option(help="requests per user before it")] = 2,
    limit: Annotated[int, typer.Option(help="items per request")] = 10,
    uplift: Annotated[float, typer.Option(help="true relative uplift of clicks")] = 0.05,
    broken_split: Annotated[float, typer.Option(
        help="fraction of treatment users lost before the server (trips SRM)")] = 0.0,
    experiment: Annotated[str | None, typer.Option(help="experiment name")] = None,
    treatment_config: Annotated[str, typer.Option(
        help="treatment variant config as JSON, e.g. '{\"model_version\": \"2\"}'")] = "{}",
    concurrency: Annotated[int, typer.Option(help="client threads")] = 8,
    replicates: Annotated[int, typer.Option(help="click re-draws for the power check")] = 200,
    seed: Annotated[int, typer.Option(help="seed of users and clicks")] = 0,
    data_dir: Annotated[Path, typer.Option(help="datasets folder (ML-100K inside)")] = Path(
        "datasets"),
    work_dir: Annotated[Path, typer.Option(help="demo server folder (git-ignored)")] = Path(
        "datasets/cache/ab-demo"),
    out: Annotated[Path | None, typer.Option(help="write the result JSON here")] = None,
) -> None:
    """Drive a server with synthetic ML-100K users against two variants with a known uplift."""
    from sona import io
    from sona.ab.simulate import SimulationConfig, simulate
    from sona.ab.users import SyntheticUsers
    from sona.data.sources import load_ml100k

    name = experiment or f"sim-{seed}-u{users}-{'broken' if broken_split else 'ok'}"
    cfg = SimulationConfig(users=users, sessions=sessions, pre_sessions=pre_sessions,
                           limit=limit, uplift=uplift, broken_split=broken_split,
                           concurrency=concurrency, experiment=name,
                           treatment_config=json.loads(treatment_config),
                           replicates=replicates, seed=seed)
    console = Console()
    demo = None
    if url is None:
        from sona.serving.demo import start_demo_server

        console.print(f"starting a demo server in {work_dir} ...")
        demo = start_demo_server(work_dir, data_dir=data_dir, reset_store=True)
        url, key = demo.url, demo.admin_key
        ml = demo.movielens
    else:
        if not key:
            raise typer.BadParameter("an admin API key is needed with --url", param_hint="--key")
        ml = load_ml100k(data_dir / "ml-100k")
    try:
        population = SyntheticUsers.from_movielens(ml, users, seed=seed, prefix=name)
        result = simulate(url, key or "", population, cfg)
    finally:
        if demo is not None:
            demo.stop()
    _print_simulation(result.to_dict(), console)
    if out is not None:
        io.write_json(out, result.to_dict())


def _print_simulation(result: dict[str, Any], console: Console) -> None:
    plan, report = result["plan"], result["report"]
    console.print(f"[bold]{result['experiment']}[/]: {result['users']} users "
                  f"({result['dropped_users']} dropped by the broken split), "
                  f"{result['requests']} requests, {result['events']} events, "
                  f"{result['seconds']:.0f} s; true uplift {_pct(result['true_uplift'])}")
    if plan:
        console.print(
            f"stated power to detect {_pct(result['true_uplift'])}: Welch "
            f"{plan['stated_power']:.2f}, with CUPED {plan['stated_power_cuped']:.2f} "
            f"(predicted CUPED factor {plan['predicted_cuped_factor']:.3f}); 80% power needs "
            f"{plan['users_per_arm_for_80pct_power']} users/arm "
            f"({plan['users_per_arm_for_80pct_power_cuped']} with CUPED)")
        if "empirical_power" in plan:
            console.print(f"power check over {plan['replicates']:.0f} click re-draws: Welch "
                          f"{plan['empirical_power']:.2f}, CUPED "
                          f"{plan['empirical_power_cuped']:.2f}")
    srm = report["srm"]
    console.print(f"[red bold]SRM flagged: p = {srm['p_value']:.3g}[/]" if srm["flagged"]
                  else f"SRM check passed: p = {srm['p_value']:.3g}")
    for c in report["comparisons"]:
        w, cu = c.get("welch"), c.get("cuped")
        if w:
            console.print(f"{c['variant']}: Welch uplift {_pct(w['relative_uplift'])} "
                          f"[{_pct(w['relative_ci_low'])}, {_pct(w['relative_ci_high'])}] "
                          f"p = {_p(w['p_value'])}")
        if cu:
            t = cu["test"]
            console.print(f"{c['variant']}: CUPED uplift {_pct(t['relative_uplift'])} "
                          f"[{_pct(t['relative_ci_low'])}, {_pct(t['relative_ci_high'])}] "
                          f"p = {_p(t['p_value'])}; CUPED variance-reduction factor "
                          f"{cu['variance_reduction']:.3f}")
        seq = c.get("sequential") or {}
        console.print(f"{c['variant']}: P(beat control) {c['bayes']['p_beat_control']:.3f}, "
                      f"always-valid p {_p(seq.get('always_valid_p'))}, "
                      f"detected: {'yes' if c['significant'] else 'no'}")


__all__ = ["ab_app", "print_report"]
