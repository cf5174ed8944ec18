"""Stage registry: names -> stage specs (and their Stage classes), with lazy entry-point discovery.

Built-in and third-party stages are both declared in the ``soundstage.stages`` entry-point
group, each naming its ``StageSpec`` (torch-free) or its ``Stage`` class; a plugin module is imported
only when its name is asked for, so one broken plugin never breaks the CLI or other recipes.
``@register_stage`` records the class on import.
"""
from __future__ import annotations

import difflib
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Callable, TypeVar

from .errors import SoundstageError, StageNotFoundError

if TYPE_CHECKING:
    from .stage import Stage
    from .stage_spec import StageSpec

ENTRY_POINT_GROUP = "soundstage.stages"

_REGISTRY: dict[str, type["StageSpec"]] = {}
S = TypeVar("S", bound=type)


def register_stage(name: str) -> Callable[[S], S]:
    """Class decorator: register a ``StageSpec`` (or ``Stage``) subclass under ``name`` (duplicates are an
    error). The spec's Stage class inherits the name."""

    def decorator(cls: S) -> S:
        from .stage_spec import StageConfig, StageSpec

        if not (isinstance(cls, type) and issubclass(cls, StageSpec)):
            raise SoundstageError(f"@register_stage({name!r}): {cls!r} is not a soundstage StageSpec or Stage subclass")
        config_class = getattr(cls, "config_class", None)
        if not (isinstance(config_class, type) and issubclass(config_class, StageConfig)):
            raise SoundstageError(
                f"@register_stage({name!r}): {cls.__name__}.config_class must be a StageConfig dataclass"
            )
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls and _qualname(existing) != _qualname(cls):
            raise SoundstageError(
                f"stage name {name!r} is already registered by {_qualname(existing)}; "
                f"cannot register {_qualname(cls)} under the same name"
            )
        cls.stage_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: EntryPoint) -> type["StageSpec"]:
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin is reported by name, never fatal elsewhere
        raise SoundstageError(f"plugin {ep.name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}") from exc
    if ep.name not in _REGISTRY:
        # The entry point may name a class that is not decorated; register it under the entry-point name.
        register_stage(ep.name)(obj)
    return _REGISTRY[ep.name]


def available_stages() -> list[str]:
    """Names of every stage that can be looked up (registered or installed), sorted."""
    return sorted(set(_REGISTRY) | set(_entry_points()))


def get_spec(name: str) -> type["StageSpec"]:
    """The spec registered as ``name`` (its declarations; no model code), importing it on first use."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    eps = _entry_points()
    if name in eps:
        return _load_entry_point(eps[name])
    known = available_stages()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise StageNotFoundError(f"unknown stage plugin {name!r}{hint} (known: {', '.join(known) or 'none'})")


def get_stage(name: str) -> type["Stage"]:
    """The Stage class registered as ``name`` (imports its model code)."""
    spec = get_spec(name)
    try:
        stage = spec.implementation()
    except ImportError as exc:
        raise SoundstageError(f"plugin {name!r}: its stage failed to import: {type(exc).__name__}: {exc}") from exc
    if stage.stage_name != name:
        raise SoundstageError(f"plugin {name!r}: {_qualname(spec)}.implementation() returned {_qualname(stage)}, "
                              f"registered as {stage.stage_name!r}; a spec's Stage class must subclass the spec")
    return stage


def list_stages() -> dict[str, type["StageSpec"] | SoundstageError]:
    """The spec of every available stage; a plugin that fails to import maps to its error instead."""
    result: dict[str, type[StageSpec] | SoundstageError] = {}
    for name in available_stages():
        try:
            result[name] = get_spec(name)
        except SoundstageError as exc:
            result[name] = exc
    return result
