"""Relative serving paths are taken from the launch folder, not BentoML's serving/ cwd."""

from pathlib import Path

from sona.serving.app import ROOT_ENV, ServingConfig, load_serving_config, rebase_paths


def test_rebase_paths_makes_files_and_sqlite_urls_absolute(tmp_path: Path) -> None:
    config = rebase_paths(ServingConfig(), tmp_path)
    assert config.database == str(tmp_path / "serving" / "sona.db")
    assert config.models_dir == str(tmp_path / "models")
    assert config.tracking.uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert config.tracking.artifact_dir == str(tmp_path / "mlflow" / "artifacts")
    assert config.search.dataset == str(tmp_path / "datasets" / "ml-100k")


def test_rebase_keeps_absolute_and_non_sqlite_urls(tmp_path: Path) -> None:
    from dataclasses import replace

    base = ServingConfig()
    config = replace(base, database="/abs/sona.db",
                     tracking=replace(base.tracking, uri="postgresql://h/db"))
    out = rebase_paths(config, tmp_path)
    assert out.database == "/abs/sona.db"
    assert out.tracking.uri == "postgresql://h/db"


def test_load_serving_config_uses_root_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.delenv("SONA_SERVING_CONFIG", raising=False)
    assert load_serving_config().database == str(tmp_path / "serving" / "sona.db")


def test_workers_default_to_one_per_core_and_negative_is_refused(tmp_path: Path) -> None:
    import pytest

    from sona import io
    from sona.errors import ConfigError

    path = tmp_path / "serving.yaml"
    io.write_yaml(path, {"workers": -1})
    with pytest.raises(ConfigError, match="workers: -1 is negative; use 0"):
        load_serving_config(path)
    io.write_yaml(path, {"workers": 2})
    assert load_serving_config(path).workers == 2
    io.write_yaml(path, {})
    assert load_serving_config(path).workers == 0  # serving/service.py: "cpu_count"
