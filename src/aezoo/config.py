"""Config dataclasses: building them from dicts, type-checked ``key=value`` overrides, and JSON/YAML I/O.

Every model's ``Config`` is a dataclass. ``build`` checks each value against the field's annotation
(int, float, bool, str, Literal, tuple[int, ...], Optional) and then runs the dataclass's own
``__post_init__`` validation, so a bad value is reported with the field's name and what is allowed.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from .errors import ConfigError


def check(ok: bool, field: str, message: str) -> None:
    """Raise a ConfigError naming ``field`` unless ``ok``: for use in ``__post_init__``."""
    if not ok:
        raise ConfigError(f"config field {field!r}: {message}")


def fields_of(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _type_name(tp) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, tp, value: Any) -> Any:
    """Return ``value`` converted to annotation ``tp``; strings (from the command line) are parsed."""
    origin = get_origin(tp)
    bad = ConfigError(f"config field {name!r}: expected {_type_name(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(name, a, value)
            except ConfigError:
                pass
        raise bad
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        raise ConfigError(f"config field {name!r}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    if origin is tuple:
        (item,) = get_args(tp)[:1]
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(",") if v.strip()]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(coerce(name, item, v.strip() if isinstance(v, str) else v) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    return value


def drop_retired(cls, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the fields dataclass ``cls`` no longer has (``cls.retired``: name -> the one
    value it could hold then), so that run folders written before still load. A retired field with
    another value is an error naming it: that run needs the field, which no longer exists."""
    import json

    retired = getattr(cls, "retired", {})
    out = dict(values)
    for name in set(retired) & set(values):
        if json.dumps(out.pop(name)) != json.dumps(retired[name]):
            raise ConfigError(f"config field {name!r} of {cls.__qualname__} was removed (it could only be {retired[name]!r}), "
                              f"got {values[name]!r}: leave it out (a run folder recording this value needs retraining)")
    return out


def coerce_fields(cls, values: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of ``values`` against dataclass ``cls`` (before everything it needs
    is known, e.g. before the data gives input_shape)."""
    values = drop_retired(cls, values)
    known = fields_of(cls)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config field {unknown[0]!r} for {cls.__qualname__}; fields: {', '.join(sorted(known))}"
        )
    return {k: coerce(k, known[k], v) for k, v in values.items()}


def build(cls, values: dict[str, Any]):
    """Instantiate dataclass ``cls`` from ``values``, type-checking each one."""
    kwargs = coerce_fields(cls, values)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{cls.__qualname__}: {e}") from None


def replace(config, **changes):
    """``dataclasses.replace`` with the same type checks as ``build``."""
    return build(type(config), {**to_dict(config), **changes})


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``["beta=4", "hidden=512,256"]`` -> ``{"beta": "4", "hidden": "512,256"}`` (coerced later)."""
    out: dict[str, str] = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def to_dict(config) -> dict[str, Any]:
    def plain(v):
        if isinstance(v, tuple):
            return [plain(i) for i in v]
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line naming the file
        raise ConfigError(f"cannot parse config file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data
