"""Configuration: dataclasses with defaults, strict overrides, JSON out.

A family's config dataclass holds its defaults; an experiment row and a
profile hold only their differences. ``apply_overrides`` refuses keys the
dataclass does not have, so a typo is an error instead of a silent default.
"""
from __future__ import annotations

import dataclasses
import json
import typing


class ConfigError(ValueError):
    pass


def _coerce(value, default):
    # JSON has no tuples: keep the default's container type.
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def apply_overrides(config, overrides: dict, *, where: str = "config"):
    """A copy of dataclass ``config`` with ``overrides`` applied; unknown keys are errors."""
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where} for {type(config).__name__}; "
                          f"known keys: {sorted(fields)}")
    values = {k: _coerce(v, getattr(config, k)) for k, v in overrides.items()}
    return dataclasses.replace(config, **values)


def from_dict(cls, values: dict, *, where: str = "config"):
    """Build dataclass ``cls`` from its defaults plus ``values`` (strict)."""
    return apply_overrides(cls(), values, where=where)


def to_jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def dumps(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n"
