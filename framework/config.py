"""Typed configs: build a dataclass instance from plain data, with errors that name the key path."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from typing import Any, Iterable, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import RecipeError

C = TypeVar("C")


def build_config(config_class: type[C], data: Any, where: str = "", source: str | None = None) -> C:
    """Validate ``data`` (mapping) against ``config_class`` and return the dataclass instance.

    Unknown keys, wrong types and missing required values (``MISSING`` / ``???``) raise
    ``RecipeError`` naming ``where.<key path>`` and the ``source`` file; so does a ``ValueError`` from a
    config's ``__post_init__`` (range checks), whose message names the key.
    """
    data = {} if data is None else data
    if not isinstance(data, dict) and not OmegaConf.is_dict(data):
        raise RecipeError(_place(where, source) + f": expected a mapping of config keys, got {type(data).__name__}")
    try:
        merged = OmegaConf.merge(_schema(config_class), data)  # merge copies: the cached schema is never changed
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        path = ".".join(p for p in (where, str(key)) if p)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = type(exc).__name__
        if kind == "ConfigKeyError":
            owner = _dataclass_at(config_class, str(key).split(".")[:-1])
            names = [f.name for f in dataclasses.fields(owner)] if owner else []
            close = difflib.get_close_matches(str(key).split(".")[-1], names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            msg = f"unknown key ({hint}valid keys of {owner.__name__}: {', '.join(names)})" if owner else "unknown key"
        elif kind == "MissingMandatoryValue":
            msg = "missing required value"
        raise RecipeError(f"{_place(path, source)}: {msg}") from exc
    except RangeError as exc:  # a __post_init__ range check (of this config or of a nested one)
        path = ".".join(p for p in (where, _path_to(config_class, exc.owner), exc.key) if p)
        raise RecipeError(f"{_place(path, source)}: {exc.reason}") from exc
    except ValueError as exc:  # a __post_init__ check of several keys
        raise RecipeError(f"{_place(where, source)}: {exc}") from exc


@functools.lru_cache(maxsize=None)
def _schema(config_class: type) -> Any:
    """The structured config of a dataclass (its defaults, typed); built once per class."""
    return OmegaConf.structured(config_class)


class RangeError(ValueError):
    """A config value outside its valid range; ``key`` is its path inside the config."""

    def __init__(self, key: str, reason: str, owner: type | None = None) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason, self.owner = key, reason, owner


def check_ranges(
    config: Any,
    prefix: str = "",
    *,
    at_least_one: Iterable[str] = (),
    positive: Iterable[str] = (),
    non_negative: Iterable[str] = (),
    fraction: Iterable[str] = (),
) -> None:
    """Raise ``RangeError`` for the first field out of its range; ``None`` (an unset optional) passes.

    ``at_least_one``: counts and sizes (>= 1); ``positive``: finite and > 0 (seconds, rates, learning
    rates); ``non_negative``: finite and >= 0; ``fraction``: within [0, 1]. A list value is checked
    element by element.
    """
    rules = (
        (at_least_one, lambda v: v >= 1, "must be >= 1"),
        (positive, lambda v: math.isfinite(v) and v > 0, "must be finite and > 0"),
        (non_negative, lambda v: math.isfinite(v) and v >= 0, "must be finite and >= 0"),
        (fraction, lambda v: 0 <= v <= 1, "must be within [0, 1]"),
    )
    for keys, ok, reason in rules:
        for key in keys:
            value = getattr(config, key)
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(v is not None and not ok(v) for v in values):
                raise RangeError(prefix + key, f"{reason}, got {value}", type(config))


def config_to_dict(config: Any) -> dict:
    """A plain, JSON-serialisable dict of a config dataclass."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)  # type: ignore[return-value]


def _dataclass_at(config_class: type, parts: list[str]) -> type | None:
    """The dataclass that owns the key at ``parts`` (walks nested dataclass and dict fields)."""
    import typing

    current: Any = config_class
    for part in parts:
        if typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]  # ``part`` is a dict key: step to the value type
            continue
        if not dataclasses.is_dataclass(current):
            return None
        current = typing.get_type_hints(current).get(part)
        if typing.get_origin(current) is typing.Union:  # Optional[Dataclass]
            current = next((a for a in typing.get_args(current) if a is not type(None)), None)
    return current if dataclasses.is_dataclass(current) else None


def _path_to(config_class: type, owner: type | None, depth: int = 3) -> str:
    """The key path of the nested dataclass field of type ``owner`` ("" for the class itself)."""
    import typing

    if owner is None or owner is config_class or depth == 0 or not dataclasses.is_dataclass(config_class):
        return ""
    for name, hint in typing.get_type_hints(config_class).items():
        if typing.get_origin(hint) is typing.Union:  # Optional[Dataclass]
            hint = next((a for a in typing.get_args(hint) if a is not type(None)), None)
        if hint is owner:
            return name
        if dataclasses.is_dataclass(hint) and (below := _path_to(hint, owner, depth - 1)):
            return f"{name}.{below}"
    return ""


def _place(path: str, source: str | None) -> str:
    where = f"key {path!r}" if path else "config"
    return f"{source}: {where}" if source else where
