"""The model registry: ``@register("name")`` in each model file, looked up by ``create``, ``load``,
the CLI and the contract tests. Model files are imported on first use, so adding a family member
means adding one file under ``aezoo/models``."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .errors import ConfigError

_MODELS: dict[str, type] = {}
_discovered = False


def register(name: str):
    """Class decorator: make a model available as ``name``. The class carries its ``Config``."""

    def deco(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise RuntimeError(f"model name {name!r} registered twice")
        if not hasattr(cls, "Config"):
            raise RuntimeError(f"model {cls.__name__} has no Config dataclass")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return deco


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{models.__name__}.{info.name}")


def list_models() -> list[str]:
    _discover()
    return sorted(_MODELS)


def get(name: str) -> type:
    _discover()
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}") from None


def create(name: str, **config: Any):
    """Build model ``name`` from keyword config values (validated against its Config dataclass)."""
    from .config import build, construct

    cls = get(name)
    return construct(cls, build(cls.Config, config))
