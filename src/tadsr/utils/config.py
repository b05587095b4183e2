"""The config dict round trip, one copy for every config dataclass (networks, schedule,
codec, degradation, training runs): `to_dict` gives JSON-able values (tuples as lists,
nested configs as dicts), `from_dict` rebuilds the dataclass, rejecting unknown keys and
values of the wrong plain type with a one-line ValueError naming the setting."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

__all__ = ["DictConfig", "from_dict", "to_dict"]

_PLAIN = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def to_dict(obj: Any) -> Any:
    """A config (dataclass, dict, tuple, value) as JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type, d: typing.Mapping[str, Any]) -> Any:
    """Build the dataclass `cls` from a (possibly partial) dict; lists become tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in d.items():
        hint = hints[k]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(v, dict):
                raise ValueError(f"{k!r} is a group of settings, not a value (got {v!r})")
            kwargs[k] = from_dict(hint, v)
        elif isinstance(v, list) and hint is not dict:
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = _checked(cls, k, hint, v)
    return cls(**kwargs)


def _checked(cls: type, name: str, hint: Any, value: Any) -> Any:
    """`value` if it has the setting's plain type (int, float, str, bool; ints pass as
    floats); a one-line ValueError naming the setting otherwise."""
    if hint not in _PLAIN:
        return value
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ValueError(f"{cls.__name__} setting {name!r} must be {_PLAIN[hint]}, got {value!r}")
    return value


class DictConfig:
    """Mixin for config dataclasses: `cfg.to_dict()` and `Cls.from_dict(d)`."""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: typing.Mapping[str, Any]) -> Any:
        return from_dict(cls, d)
