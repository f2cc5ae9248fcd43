"""Configuration: dataclasses with defaults, strict overrides, JSON out.

A family's config dataclass holds its defaults; an experiment row and a
profile hold only their differences. ``apply_overrides`` refuses keys the
dataclass does not have, so a typo is an error instead of a silent default.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
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


# ------------------------------------------------------------ overrides from the command line
# ``--set family.field=value`` (run_all.py) and ``--set field=value`` (experiments.sample):
# the text is converted against the dataclass field's declared type, strictly: a word
# where a number belongs, a non-finite float, a fraction for an integer field, an unknown
# field are one-line ConfigErrors, never a silent string, truncation or default.

_NONE_WORDS = ("none", "null")
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}
_INT_TEXT = re.compile(r"^[+-]?[0-9]+$")


def _assignment(text, option: str, example: str):
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"{option} {text!r}: write {example}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def parse_override(text, *, option: str = "--set"):
    """``"gan.g_learning_rate=0.002"`` -> ``("gan", "g_learning_rate", "0.002")``: the
    family, the field and the value's text (converted later by :func:`convert_overrides`,
    against the family's dataclass). A ConfigError for any other shape."""
    example = "FAMILY.FIELD=VALUE, e.g. --set gan.g_learning_rate=0.002"
    key, value = _assignment(text, option, example)
    family, dot, field = key.partition(".")
    if not (dot and family.isidentifier() and field.isidentifier()):
        raise ConfigError(f"{option} {text!r}: write {example}")
    return family, field, value


def parse_setting(text, *, option: str = "--set"):
    """``"guidance_scale=3"`` -> ``("guidance_scale", "3")`` (a ``family.`` prefix is
    kept in the key: the caller checks it names the right family)."""
    key, value = _assignment(text, option, "FIELD=VALUE, e.g. --set guidance_scale=2")
    if not all(part.isidentifier() for part in key.split(".")) or key.count(".") > 1:
        raise ConfigError(f"{option} {text!r}: write FIELD=VALUE, e.g. --set guidance_scale=2")
    return key, value


def field_types(cls) -> dict:
    """Field name -> declared type of dataclass ``cls`` (string annotations resolved)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: use what is declared
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)}


def _field_default(cls, name):
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _type_name(tp) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def convert_value(tp, text: str, default=None):
    """``text`` as a value of type ``tp`` (int, float, bool, str, Optional[...], Literal,
    tuple[X, ...] or a bare tuple whose default says the element type); ValueError saying
    what was expected."""
    text = text.strip()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        if type(None) in args and text.lower() in _NONE_WORDS:
            return None
        options = [a for a in args if a is not type(None)]
        problems = []
        for option in options:
            try:
                return convert_value(option, text, default)
            except ValueError as err:
                problems.append(str(err))
        raise ValueError(" or ".join(problems) + (", or none" if type(None) in args else ""))
    if origin is typing.Literal:
        for choice in args:
            try:
                if convert_value(type(choice), text) == choice:
                    return choice
            except ValueError:
                continue
        raise ValueError(f"one of {', '.join(str(a) for a in args)}")
    if tp is bool:
        if text.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[text.lower()]
        raise ValueError("true or false")
    if tp is int:
        if _INT_TEXT.match(text):
            return int(text)
        raise ValueError("a whole number")
    if tp is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a number") from None
        if not math.isfinite(value):
            raise ValueError("a finite number")
        return value
    if tp is str:
        return text
    if tp is tuple or origin is tuple:
        if args and (len(args) == 2 and args[1] is Ellipsis):
            element = args[0]
        elif args:
            element = None  # a fixed-length tuple: one type per place
        else:  # a bare ``tuple``: its default's elements say the type
            kinds = {type(v) for v in (default or ())}
            element = kinds.pop() if len(kinds) == 1 and kinds <= {int, float, str} else str
        parts = [p.strip() for p in text.strip("()[] ").split(",")]
        if parts and parts[-1] == "" and len(parts) > 1:  # "16,32,": a trailing comma
            parts.pop()
        if not parts or any(p == "" for p in parts):
            raise ValueError("comma-separated values, e.g. 16,32,64")
        if element is None:
            if len(parts) != len(args):
                raise ValueError(f"{len(args)} comma-separated values")
            return tuple(convert_value(t, p) for t, p in zip(args, parts))
        try:
            return tuple(convert_value(element, p) for p in parts)
        except ValueError as err:
            raise ValueError(f"comma-separated values, each {err}") from None
    raise ValueError(f"a value of type {_type_name(tp)}, which the command line cannot set")


def convert_overrides(cls, texts: dict, *, where: str = "--set",
                      fixed: dict | None = None, allowed=None, advice: str = "") -> dict:
    """Field -> value of dataclass ``cls``, each converted from its text (``texts``)
    against the field's declared type; one ConfigError for the first bad one.

    where: how the message names the option (``--set gan.``: the field follows).
    fixed: field -> why it cannot be set this way (and what to do instead).
    allowed: the only fields that may be set (None: every field but the fixed ones);
    advice: what the message says about the others.
    """
    types, fixed = field_types(cls), dict(fixed or {})
    settable = [name for name in types if name not in fixed
                and (allowed is None or name in allowed)]
    out = {}
    for name, text in texts.items():
        if name in fixed:
            raise ConfigError(f"{where}{name}: {fixed[name]}")
        if name not in types:
            raise ConfigError(f"{where}{name}: unknown key for {cls.__name__}; known keys: "
                              f"{', '.join(settable) or 'none'}")
        if allowed is not None and name not in allowed:
            raise ConfigError(f"{where}{name}: {advice or 'cannot be set here'}")
        try:
            out[name] = convert_value(types[name], text, _field_default(cls, name))
        except ValueError as err:
            kind = _type_name(types[name])
            default = _field_default(cls, name)
            if types[name] is tuple and default:
                kind = f"a tuple of {type(default[0]).__name__}"
            raise ConfigError(f"{where}{name}={text}: {cls.__name__}.{name} is {kind}; "
                              f"give {err}, not {text!r}") from None
    return out


def value_text(value) -> str:
    """A converted override's value as the command line would write it (folder names,
    table footnotes): 0.002, 16,32,64, true, none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.,=+-]*$")
_MAX_LABEL = 80


def overrides_label(overrides: dict) -> str:
    """The run-folder suffix of a run's overrides ('' for none): ``+field=value`` per
    field in name order (``+g_learning_rate=0.002``), or, when that would be long or hold
    characters a file name should not (``/``, spaces, ...), ``+field,field-h<8 hex>`` of a
    stable hash of the values. Filesystem-safe either way; two different sets of
    overrides never share a label."""
    if not overrides:
        return ""
    items = sorted(overrides.items())
    readable = "".join(f"+{name}={value_text(value)}" for name, value in items)
    if len(readable) <= _MAX_LABEL and _SAFE_NAME.match(readable) \
            and all("+" not in value_text(v) and "=" not in value_text(v) for _, v in items):
        return readable
    digest = hashlib.sha256(json.dumps(to_jsonable(dict(items)), sort_keys=True)
                            .encode()).hexdigest()[:8]
    names = ",".join(name for name, _ in items)
    if len(names) > _MAX_LABEL:
        names = names[:_MAX_LABEL].rsplit(",", 1)[0] + ",..."
    return f"+{names}-h{digest}"


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
