"""Config dataclasses: building them from dicts, type-checked ``key=value`` overrides, and JSON/YAML I/O.

Every model's ``Config`` is a dataclass. ``build`` checks each value against the field's annotation
(int, float, bool, str, Literal, tuple[int, ...], Optional) and then runs the dataclass's own
``__post_init__`` validation, so a bad value is reported with the field's name and what is allowed.
"""
from __future__ import annotations

import dataclasses
import json
import math
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

            # aliases are refused: a few lines of nested aliases expand to billions of values (issue 22:
            # the "billion laughs"), and a config has no need of them
            if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise ConfigError(f"config file {path}: YAML aliases (*name) are not allowed; write the values out")
            data = yaml.safe_load(text)
        depth_check(data, str(path))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line naming the file
        raise ConfigError(f"cannot parse config file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


MAX_DEPTH = 32  # deeper than any config aezoo writes; refused before anything recurses into it


def depth_check(obj: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """One line unless ``obj`` (parsed JSON or YAML) nests at most ``limit`` levels (issue 22: a
    hand-edited config.json nested 100,000 deep gave a RecursionError). Iterative, so it never recurses."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > limit:
                raise ConfigError(f"{where}: nested deeper than {limit} levels")
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))


def construct(cls, config):
    """``cls(config)`` for a module class, first built on the meta device (no memory) to count the
    bytes of its weights: sizes that memory cannot hold are one line naming the field most above its
    default, not an allocator's traceback or the OOM killer (issue 22: ``--set latent_dim=10**12``)."""
    import torch

    from .utils import memory_bytes

    need = 0
    if _field_ratio(config)[0] > PROBE_RATIO:  # the meta probe costs 2-3 s once per process (torch's init ops on meta)
        try:
            with torch.device("meta"):
                probe = cls(config)
            need = sum(t.numel() * t.element_size() for t in [*probe.parameters(), *probe.buffers()])
        except RuntimeError as e:
            if "overflow" in str(e):  # a tensor larger than torch can index
                raise ConfigError(f"{_largest_field(config)}: the model's tensors would be larger than torch can index") from None
        except (NotImplementedError, TypeError, ValueError):  # a constructor that computes on its tensors
            pass
    budget = memory_bytes() // 4  # weights, gradients and Adam's two moments
    if need > budget:
        raise ConfigError(f"{_largest_field(config)}: the model's weights would take {need / 2**30:.1f} GiB, and training needs "
                          f"4x that; this machine has {memory_bytes() / 2**30:.1f} GiB")
    try:
        return cls(config)
    except (MemoryError, torch.OutOfMemoryError) as e:
        raise ConfigError(f"{_largest_field(config)}: the model does not fit in memory ({str(e).splitlines()[0][:120]})") from None
    except RuntimeError as e:
        if "allocate" not in str(e):
            raise
        raise ConfigError(f"{_largest_field(config)}: the model does not fit in memory ({str(e).splitlines()[0][:120]})") from None


PROBE_RATIO = 64  # a size this far above its default (or an input this many times 2**16 values) is counted before it is built


def _field_ratio(config) -> tuple[float, str | None]:
    """(ratio, name) of the integer field furthest above its default; a field without a default (the
    input shape) counts its product against 2**16."""
    best, name = 0.0, None
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        sizes = [v for v in (value if isinstance(value, tuple) else (value,)) if isinstance(v, int) and not isinstance(v, bool)]
        if not sizes:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            ratio = math.prod(sizes) / 2**16
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            base = [v for v in (default if isinstance(default, tuple) else (default,)) if isinstance(v, int) and not isinstance(v, bool)]
            ratio = max(sizes) / max(max(base, default=1), 1)
        if ratio > best:
            best, name = ratio, f.name
    return best, name


def _largest_field(config) -> str:
    """'config field NAME = VALUE' of the integer field furthest above its default (the likely culprit)."""
    name = _field_ratio(config)[1]
    return f"config field {name!r} = {getattr(config, name)!r}" if name else "the model's config"
