"""Typed configuration: YAML <-> frozen dataclasses, strict keys, CLI overrides.

Precedence (fixed): dataclass defaults < YAML file < CLI overrides (``--set a.b=1``).
This is the only module that reads environment variables (:func:`env`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sona import io
from sona.errors import ConfigError

T = TypeVar("T")


def env(name: str, default: str | None = None) -> str | None:
    """Read an environment variable (the single sanctioned place)."""
    return os.environ.get(name, default)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    Nested dataclasses, ``list``/``tuple`` and ``dict`` fields, ``Optional`` and ``Literal``
    are supported. Error messages give the dotted key path.

    Raises:
        ConfigError: unknown key, missing required key, or a value of the wrong type.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(where + k for k in unknown)} for {cls.__name__}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}{' at ' + where if where else ''}: {exc}") from exc


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a dataclass type, not an instance
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=f"{key}.")
    if origin in (list, tuple, Iterable) or tp in (list, tuple):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Path:
        return Path(value)
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a dataclass config (tuples become lists) for YAML/JSON."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(dataclasses.asdict(config))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists indexed ``a.0``), for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list | tuple) and v and isinstance(v[0], Mapping):
            for i, item in enumerate(v):
                out.update(flatten(item, f"{key}.{i}."))
        else:
            out[key] = v
    return out


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (value parsed as YAML) to a nested mapping.

    A numeric path segment indexes a list (``models.1.params.l2=100``).

    Raises:
        ConfigError: malformed override or a path through a non-container.
    """
    result = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        value = yaml.safe_load(raw) if raw else ""
        node: Any = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = _child(node, part, item)
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, item)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override {item!r}: {last!r} is not inside a mapping")
    return result


def _child(node: Any, part: str, item: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, item)]
    if isinstance(node, dict):
        return node.setdefault(part, {})
    raise ConfigError(f"override {item!r}: cannot descend into {node!r}")


def _list_index(node: list[Any], part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {item!r}: {part!r} is not an index of a {len(node)}-list")
    return int(part)


def load(path: str | Path, cls: type[T], overrides: Iterable[str] = ()) -> T:
    """Load YAML ``path`` into dataclass ``cls``, applying CLI ``overrides`` last."""
    raw = io.read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    return from_dict(cls, apply_overrides(raw, overrides))


def dump(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML that :func:`load` reads back unchanged."""
    io.write_yaml(path, to_dict(config))
