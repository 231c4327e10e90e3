"""ExperimentConfig: strict loading, precedence of overrides, model-parameter validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sona import config as sona_config
from sona.data.splits import SplitConfig
from sona.errors import ConfigError
from sona.experiments.spec import DatasetConfig, ExperimentConfig, load_experiment

REPO = Path(__file__).resolve().parents[2]
BASELINES = REPO / "experiments" / "ml100k-baselines.yaml"


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


MINIMAL = {"name": "x", "models": [{"name": "ease", "model": "ease"}]}


def test_baseline_yaml_loads_with_the_agreed_protocol() -> None:
    cfg = load_experiment(BASELINES)
    assert cfg.name == "ml100k-baselines"
    assert cfg.dataset == DatasetConfig(name="ml-100k", data_dir="datasets")
    assert cfg.split == SplitConfig(method="stratified", ratio=0.75, by="user", seed=42)
    assert cfg.k == 10
    assert cfg.metrics == ["precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage",
                           "novelty", "personalization"]
    assert [m.model for m in cfg.models] == ["popularity", "itemknn", "als", "bpr", "ease"]
    assert cfg.tracking.uri == "sqlite:///mlflow/mlflow.db"
    assert cfg.engine == "local" and cfg.published is True


def test_precedence_defaults_then_yaml_then_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.yaml", {**MINIMAL, "k": 5})
    assert load_experiment(_write(tmp_path / "d.yaml", MINIMAL)).k == 10  # default
    assert load_experiment(path).k == 5  # YAML beats default
    cfg = load_experiment(path, ["k=7", "split.seed=9", "models.0.params.l2=123"])
    assert cfg.k == 7  # override beats YAML
    assert cfg.split.seed == 9 and cfg.split.ratio == 0.75
    assert cfg.models[0].params == {"l2": 123}


def test_override_values_are_parsed_as_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.yaml", MINIMAL)
    cfg = load_experiment(path, ["metrics=[ndcg, recall]", "tracking.enabled=false"])
    assert cfg.metrics == ["ndcg", "recall"]
    assert cfg.tracking.enabled is False


def test_unknown_top_level_key_lists_valid_keys(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.yaml", {**MINIMAL, "modles": []})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) modles .*valid keys: .*models"):
        load_experiment(path)


def test_unknown_model_param_names_its_path_and_the_valid_keys(tmp_path: Path) -> None:
    data = {"name": "x", "models": [{"name": "pop", "model": "popularity"},
                                    {"name": "ease", "model": "ease", "params": {"l3": 1}}]}
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path / "e.yaml", data))
    assert "models[1].params.l3" in str(err.value)
    assert "valid keys: binary, l2" in str(err.value)


def test_unknown_param_from_override_is_caught_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.params\.n_factors"):
        load_experiment(_write(tmp_path / "e.yaml", MINIMAL), ["models.0.params.n_factors=8"])


def test_mistyped_model_param(tmp_path: Path) -> None:
    data = {"name": "x", "models": [{"name": "ease", "model": "ease",
                                     "params": {"l2": "big"}}]}
    with pytest.raises(ConfigError, match=r"models\[0\]\.params\.l2: expected a number"):
        load_experiment(_write(tmp_path / "e.yaml", data))


def test_unknown_model_lists_registered_models(tmp_path: Path) -> None:
    data = {"name": "x", "models": [{"name": "m", "model": "svd++"}]}
    with pytest.raises(ConfigError, match=r"models\[0\]\.model: unknown model 'svd\+\+'; "
                                          r"valid models: .*ease.*popularity"):
        load_experiment(_write(tmp_path / "e.yaml", data))


@pytest.mark.parametrize(("change", "message"), [
    ({"k": 0}, "k must be >= 1"),
    ({"k": "ten"}, "k: expected an integer"),
    ({"metrics": ["ndcg", "auc"]}, r"unknown metric\(s\) \['auc'\]"),
    ({"dataset": {"name": "file"}}, "dataset.path is required"),
    ({"dataset": {"name": "ml-1m"}}, r"dataset.name: 'ml-1m' is not one of"),
    ({"engine": "dask"}, r"engine: 'dask' is not one of \['local', 'spark'\]"),
    ({"models": []}, "list at least one model"),
    ({"models": [{"name": "a", "model": "ease"}, {"name": "a", "model": "popularity"}]},
     r"models\[1\].name 'a' is used twice"),
])
def test_invalid_configs_fail_precisely(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_experiment(_write(tmp_path / "e.yaml", {**MINIMAL, **change}))


def test_dump_load_round_trip_is_lossless(tmp_path: Path) -> None:
    cfg = load_experiment(BASELINES, ["models.4.params.l2=250.0", "split.seed=3"])
    sona_config.dump(cfg, tmp_path / "round.yaml")
    again = load_experiment(tmp_path / "round.yaml")
    assert again == cfg
    assert isinstance(again, ExperimentConfig)
