from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sona import config
from sona.data import SplitConfig
from sona.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Optimizer:
    # learning rate
    lr: float = 0.01
    # optimizer family
    kind: Literal["sgd", "adam"] = "adam"


@dataclass(frozen=True, slots=True)
class Model:
    # registry name of the model
    name: str = "ease"
    # hyper-parameters
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Experiment:
    # experiment name
    name: str = "demo"
    # list length
    k: int = 10
    # whether to keep seen items
    keep_seen: bool = False
    # seeds to repeat with
    seeds: tuple[int, ...] = (1, 2)
    # optional wall-clock budget, seconds
    budget: float | None = None
    # nested section
    optimizer: Optimizer = field(default_factory=Optimizer)
    # list of sections
    models: list[Model] = field(default_factory=list)
    # where results go
    out: Path = Path("results")


@dataclass(frozen=True, slots=True)
class Required:
    # no default: must be given
    size: int


# --- strict loading ---------------------------------------------------------------------------

def test_unknown_key_names_the_dotted_path_and_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        config.from_dict(Experiment, {"optimizer": {"lr": 0.1, "momentum": 0.9}})
    assert str(err.value) == ("unknown key(s) optimizer.momentum for Optimizer; "
                              "valid keys: kind, lr")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) models\[0\]\.nme for Model; "
                                          r"valid keys: name, params"):
        config.from_dict(Experiment, {"models": [{"nme": "als"}]})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) kk for Experiment; valid keys: "
                                          r"budget, k, keep_seen, models, name, optimizer"):
        config.from_dict(Experiment, {"kk": 5})


@pytest.mark.parametrize(("data", "message"), [
    ({"k": "ten"}, "k: expected an integer, got 'ten'"),
    ({"k": True}, "k: expected an integer, got True"),
    ({"k": 2.5}, "k: expected an integer, got 2.5"),
    ({"keep_seen": "yes"}, "keep_seen: expected true/false, got 'yes'"),
    ({"name": 3}, "name: expected a string, got 3"),
    ({"seeds": "1,2"}, "seeds: expected a list, got '1,2'"),
    ({"seeds": [1, "two"]}, r"seeds\[1\]: expected an integer, got 'two'"),
    ({"budget": "soon"}, "budget: 'soon' matches none of"),
    ({"optimizer": {"lr": False}}, "optimizer.lr: expected a number, got False"),
    ({"optimizer": {"kind": "rmsprop"}}, r"optimizer.kind: 'rmsprop' is not one of \['sgd', "
                                         r"'adam'\]"),
    ({"optimizer": 0.1}, "optimizer: expected a mapping for Optimizer, got 0.1"),
    ({"models": [{"params": {"l2": "big"}}]},
     r"models\[0\].params.l2: expected a number, got 'big'"),
])
def test_type_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict(Experiment, data)


def test_values_are_coerced_to_field_types():
    loaded = config.from_dict(Experiment, {"seeds": [3], "budget": 5, "optimizer": {"lr": 1},
                                           "out": "elsewhere", "models": [{"name": "als"}]})
    assert loaded.seeds == (3,) and loaded.budget == 5.0 and isinstance(loaded.budget, float)
    assert loaded.optimizer == Optimizer(lr=1.0) and loaded.out == Path("elsewhere")
    assert loaded.models == [Model(name="als")]
    assert config.from_dict(Experiment, None) == Experiment()


def test_missing_required_key():
    with pytest.raises(ConfigError, match="Required: .*missing 1 required .*'size'"):
        config.from_dict(Required, {})


# --- overrides ----------------------------------------------------------------------------------

def test_overrides_parse_values_as_yaml():
    data = {"a": {"b": 0, "c": "x"}, "models": [{"l2": 1}, {"l2": 2}]}
    out = config.apply_overrides(data, ["a.b=1", "a.c=true", "models.1.l2=100", "new.key=[1, 2]",
                                       "a.d="])
    assert out == {"a": {"b": 1, "c": True, "d": ""}, "models": [{"l2": 1}, {"l2": 100}],
                   "new": {"key": [1, 2]}}
    assert data["a"]["b"] == 0  # the input is not mutated


@pytest.mark.parametrize(("data", "override", "message"), [
    ({}, "a.b", "must look like key.path=value"),
    ({}, "=3", "must look like key.path=value"),
    ({"m": [1, 2]}, "m.5=0", "'5' is not an index of a 2-list"),
    ({"m": [{"x": 1}]}, "m.first.x=0", "'first' is not an index of a 1-list"),
    ({"a": 1}, "a.b=2", "'b' is not inside a mapping"),
    ({"a": 1}, "a.b.c=2", "cannot descend into 1"),
])
def test_bad_overrides(data, override, message):
    with pytest.raises(ConfigError, match=message):
        config.apply_overrides(data, [override])


def test_load_applies_overrides_last(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: base\nk: 5\noptimizer:\n  lr: 0.5\nmodels:\n  - name: ease\n"
                    "  - name: als\n    params: {factors: 8}\n", encoding="utf-8")
    loaded = config.load(path, Experiment, ["k=20", "models.1.params.factors=64"])
    assert loaded.name == "base" and loaded.k == 20 and loaded.optimizer.lr == 0.5
    assert loaded.models[1] == Model("als", {"factors": 64.0})
    assert loaded.keep_seen is False  # dataclass default survives
    with pytest.raises(ConfigError, match=r"unknown key\(s\) optimizer.lrr"):
        config.load(path, Experiment, ["optimizer.lrr=1"])


def test_load_rejects_non_mapping_and_reads_empty_as_defaults(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping, got list"):
        config.load(tmp_path / "list.yaml", Experiment)
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert config.load(tmp_path / "empty.yaml", Experiment) == Experiment()


def test_flatten_for_mlflow_params():
    flat = config.flatten(config.to_dict(Experiment(models=[Model("als", {"f": 8.0})])))
    assert flat["optimizer.lr"] == 0.01 and flat["models.0.name"] == "als"
    assert flat["models.0.params.f"] == 8.0 and flat["seeds"] == [1, 2]
    assert flat["out"] == "results"


def test_split_config_round_trips(tmp_path):
    original = SplitConfig(method="random", ratios=(0.6, 0.2, 0.2), seed=7)
    config.dump(original, tmp_path / "split.yaml")
    assert config.load(tmp_path / "split.yaml", SplitConfig) == original


def test_env_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SONA_TEST_VALUE", "on")
    monkeypatch.delenv("SONA_TEST_ABSENT", raising=False)
    assert config.env("SONA_TEST_VALUE") == "on"
    assert config.env("SONA_TEST_ABSENT", "fallback") == "fallback"


# --- YAML round trip ------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
FLOATS = st.floats(allow_nan=False)
optimizers = st.builds(Optimizer, lr=FLOATS, kind=st.sampled_from(["sgd", "adam"]))
models = st.builds(Model, name=TEXT, params=st.dictionaries(TEXT, FLOATS, max_size=3))
experiments = st.builds(
    Experiment,
    name=TEXT,
    k=st.integers(-(2**63), 2**63 - 1),
    keep_seen=st.booleans(),
    seeds=st.lists(st.integers(), max_size=4).map(tuple),
    budget=st.none() | FLOATS,
    optimizer=optimizers,
    models=st.lists(models, max_size=3),
    out=st.sampled_from([Path("results"), Path("a/b c"), Path("/tmp/x.yaml")]),
)


@settings(max_examples=80, deadline=None)
@given(original=experiments)
def test_yaml_round_trip_is_lossless(tmp_path_factory, original):
    path = tmp_path_factory.mktemp("rt") / "exp.yaml"
    config.dump(original, path)
    loaded = config.load(path, Experiment)
    assert loaded == original
    for a, b in zip(loaded.models, original.models, strict=True):  # -0.0 vs 0.0 compare equal
        assert all(math.copysign(1, a.params[k]) == math.copysign(1, b.params[k])
                   for k in a.params)
