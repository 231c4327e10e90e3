"""``sona promote``, ``sona export``, ``sona keys ...`` and ``sona serve``.

All four read the serving YAML (``--config``, else ``$SONA_SERVING_CONFIG``, else the
defaults): registered model name, bundle folder, MLflow store and the SQLite database.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from sona.cli import app

if TYPE_CHECKING:
    from sona.serving.app import ServingConfig
    from sona.serving.export_onnx import ExportConfig

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="serving YAML (default: $SONA_SERVING_CONFIG, else built-in defaults)")]
NameOpt = Annotated[str | None, typer.Option(
    "--name", help="registered model name (default: the config's model_name)")]
ContentOpt = Annotated[str, typer.Option(
    "--content", help="item content vectors of the pipeline served around a plain model: "
                      "text (MiniLM), tfidf or genres (a pipeline run keeps its own)")]
ExporterOpt = Annotated[str, typer.Option(
    "--exporter", help="ONNX exporter of those graphs: dynamo (torch.export) or torchscript "
                       "(legacy, fast); a pipeline run keeps the graphs it was evaluated with")]
DataDirOpt = Annotated[Path, typer.Option(
    "--data-dir", help="datasets folder; ML-100K is read from <data-dir>/ml-100k")]
CatalogOpt = Annotated[Path | None, typer.Option(
    "--catalog", help="catalog file (item_id, title, genres) instead of ML-100K")]
InteractionsOpt = Annotated[Path | None, typer.Option(
    "--interactions", help="with --catalog: the log (user_id, item_id, timestamp...) the "
                           "models were fitted on; a plain model is served as a pipeline "
                           "built from it (popularity, time of day, cold start)")]

keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _serving(config: Path | None) -> ServingConfig:
    from sona.serving.app import load_serving_config

    return load_serving_config(config)


def _export_config(content: str, exporter: str) -> ExportConfig:
    from sona.config import from_dict
    from sona.serving.export_onnx import ExportConfig

    return from_dict(ExportConfig, {"content": {"source": content}, "exporter": exporter})


_PROMOTE_HELP = (
    "Export the best exportable run of EXPERIMENT, then move the champion alias to it.\n\n"
    "Runs are tried best first by --metric. The chosen run is registered as a new version "
    "and its ONNX bundle is published to models/<name>/<version>/; only then do the champion "
    "alias (the old champion becomes previous), the version tags and the audit row move. "
    "A run whose model cannot be exported (e.g. hybrid, ranker, graph walk) is skipped for "
    "the next one.\n\n"
    "If the export fails, the alias stays where it was, the version is tagged "
    "export_status=failed and the command prints one error line and exits 2."
)


@app.command("promote", help=_PROMOTE_HELP)
def promote_command(
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment name")],
    metric: Annotated[str, typer.Option("--metric", help="run metric to rank by")] = "ndcg_at_10",
    minimize: Annotated[bool, typer.Option("--minimize", help="lower is better")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why (audit log)")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="only runs of this model (e.g. pipeline: the served recommender)")
    ] = None,
    export: Annotated[bool, typer.Option(
        "--export/--no-export",
        help="publish the ONNX bundle before moving the alias; --no-export moves the alias "
             "at once and servers answer 503 until `sona export` writes the bundle")] = True,
    name: NameOpt = None, config: ConfigOpt = None, content: ContentOpt = "text",
    exporter: ExporterOpt = "dynamo", data_dir: DataDirOpt = Path("datasets"),
    catalog: CatalogOpt = None, interactions: InteractionsOpt = None,
) -> None:
    """Export the best exportable run of EXPERIMENT, then move the champion alias to it."""
    from sona.db import sqlite_url
    from sona.experiments.tracking import Tracker
    from sona.serving.audit import AuditLog
    from sona.serving.promotion import ExportTarget, load_export_data, promote_best

    cfg = _serving(config)
    model_name = name or cfg.model_name
    tracker = Tracker(cfg.tracking)
    audit = AuditLog(sqlite_url(cfg.database))
    # data first: a missing dataset must fail before anything is registered
    data = load_export_data(data_dir, catalog=catalog, interactions=interactions) \
        if export else None
    target = (ExportTarget(Path(cfg.models_dir), data, _export_config(content, exporter))
              if data is not None else None)
    done = promote_best(tracker, experiment, metric, model_name, model=model,
                        maximize=not minimize,
                        reason=reason, audit=audit, export=target)
    console = Console(soft_wrap=True)  # paths and reasons stay one line each
    for skip in done.skipped:
        console.print(skip.describe(), markup=False)
    if done.bundle is not None:
        console.print(f"exported {done.name} v{done.version} to {done.bundle}", markup=False)
    console.print(f"champion: {done.name} v{done.version} (run {done.run_name or done.run_id}, "
                  f"{done.metric}={done.value:.4f})"
                  + (f"; previous: v{done.previous}" if done.previous else ""), markup=False)


@app.command("export")
def export_command(
    version: Annotated[str | None, typer.Option(
        "--version", help="registered version (default: the champion)")] = None,
    name: NameOpt = None, config: ConfigOpt = None, content: ContentOpt = "text",
    exporter: ExporterOpt = "dynamo", data_dir: DataDirOpt = Path("datasets"),
    catalog: CatalogOpt = None, interactions: InteractionsOpt = None,
) -> None:
    """Write a registered version as ONNX under models/<name>/<version>/ (parity-checked)."""
    from sona.errors import ConfigError
    from sona.experiments.tracking import Tracker
    from sona.serving.promotion import export_version, load_export_data

    cfg = _serving(config)
    model_name = name or cfg.model_name
    tracker = Tracker(cfg.tracking)
    target = version if version is not None else tracker.get_alias_version(
        model_name, cfg.alias)
    if target is None:
        raise ConfigError(f"{model_name!r} has no champion; run `sona promote` or pass --version")
    result = export_version(tracker, model_name, target, cfg.models_dir,
                            load_export_data(data_dir, catalog=catalog,
                                             interactions=interactions),
                            _export_config(content, exporter))
    console = Console(soft_wrap=True)
    for check in result.manifest["parity"]["checks"]:
        console.print(f"parity {check['graph']:>13}: max|diff| {check['max_abs_diff']:.2e} over "
                      f"{check['n_inputs']} inputs, top-10 identical "
                      f"{check['top10_identical']:.0%}", markup=False)
    weights = ", ".join(f"{s}={w:g}" for s, w in result.manifest["weights"].items())
    console.print(f"pipeline: weights {weights}; MMR λ {result.manifest['mmr_lambda']:g}",
                  markup=False)
    console.print(f"exported {model_name} v{target} to {result.path}", markup=False)


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option(
        "--scope", help="read, write or admin (repeatable; admin implies all)")],
    key_name: Annotated[str, typer.Option("--key-name", help="label for humans")] = "",
    config: ConfigOpt = None,
) -> None:
    """Create an API key and print it once (only its SHA-256 is stored)."""
    from sona.db import sqlite_url
    from sona.serving.audit import AuditLog
    from sona.serving.auth import KeyStore, check_scopes

    cfg = _serving(config)
    try:
        scopes = check_scopes(scope)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None
    url = sqlite_url(cfg.database)
    meta, plain = KeyStore(url).create(scopes, name=key_name)
    AuditLog(url).record("api_key_created", "api_key", str(meta.key_id),
                         details={"scopes": list(meta.scopes), "name": key_name})
    typer.echo(plain)
    typer.echo(f"key id {meta.key_id}, scopes {', '.join(meta.scopes)}; store it now, it is "
               "not shown again", err=True)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None) -> None:
    """List keys (id, prefix, scopes, state); never the keys themselves."""
    from sona.db import sqlite_url
    from sona.serving.auth import KeyStore

    cfg = _serving(config)
    for key in KeyStore(sqlite_url(cfg.database)).list():
        state = "revoked" if key.revoked else "active"
        typer.echo(f"{key.key_id}\t{key.prefix}...\t{','.join(key.scopes)}\t{state}\t{key.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="key id from `sona keys list`")],
                config: ConfigOpt = None) -> None:
    """Revoke a key by id (every worker of a running server refuses it at once)."""
    from sona.db import sqlite_url
    from sona.errors import ConfigError
    from sona.serving.audit import AuditLog
    from sona.serving.auth import KeyStore
    from sona.shared import SharedState

    cfg = _serving(config)
    url = sqlite_url(cfg.database)
    # the running server's workers cache verified keys: the shared version drops them
    shared = SharedState.for_database(cfg.database)
    try:
        revoked = KeyStore(url, shared=shared).revoke(key_id)
    finally:
        shared.close()
    if not revoked:
        raise ConfigError(f"no API key with id {key_id}")
    AuditLog(url).record("api_key_revoked", "api_key", str(key_id))
    typer.echo(f"revoked key {key_id}")


class _Stop(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by the signal handler of ``sona serve`` to leave ``wait()``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@app.command("serve")
def serve_command(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 3000,
    grace: Annotated[float, typer.Option(
        "--grace", help="seconds the server gets to drain in-flight requests on "
                        "SIGTERM/SIGINT before it is killed")] = 30.0,
) -> None:
    """Run the BentoML service (serving/service.py) in the foreground.

    The server runs as a child in a session of its own; SIGTERM and SIGINT are forwarded
    to every process of its tree (issue 13: an exec'd ``bentoml serve`` exited on SIGTERM
    and left its worker answering, re-parented to init). Exits 0 after a signalled stop,
    else with the server's own status.
    """
    import signal
    import subprocess

    from sona.serving.process import REPO_ROOT, terminate_tree

    env = dict(os.environ)
    if config is not None:
        env["SONA_SERVING_CONFIG"] = str(config.resolve())
    # relative paths in the config mean "from where you ran sona serve", not serving/
    env.setdefault("SONA_SERVING_ROOT", os.getcwd())
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    env.setdefault("BENTOML_HOME", str(REPO_ROOT / ".bentoml"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    bentoml = str(Path(sys.executable).with_name("bentoml"))

    def _raise(signum: int, _frame: object) -> None:
        raise _Stop(signum)

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, _raise) for sig in handled}
    try:
        proc = subprocess.Popen(
            [bentoml, "serve", "service:Sona", "--working-dir", str(REPO_ROOT / "serving"),
             "--host", host, "--port", str(port)], env=env, start_new_session=True)
        try:
            status = proc.wait()
        except _Stop as stop:
            for sig in handled:  # a second Ctrl-C must not interrupt the drain
                signal.signal(sig, signal.SIG_IGN)
            terminate_tree(proc, stop.signum, timeout_s=grace)
            status = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    raise typer.Exit(status if status >= 0 else 128 - status)
