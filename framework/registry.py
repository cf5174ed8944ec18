"""Stage registry: names -> Stage classes, with lazy entry-point discovery.

Built-in and third-party stages are both declared in the ``soundstage.stages`` entry-point
group; a stage module is imported only when its name is asked for, so one broken plugin
never breaks the CLI or other recipes. ``@register_stage`` records the class on import.
"""
from __future__ import annotations

import difflib
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Callable, TypeVar

from .errors import SoundstageError, StageNotFoundError

if TYPE_CHECKING:
    from .stage import Stage

ENTRY_POINT_GROUP = "soundstage.stages"

_REGISTRY: dict[str, type["Stage"]] = {}
S = TypeVar("S", bound=type)


def register_stage(name: str) -> Callable[[S], S]:
    """Class decorator: register a ``Stage`` subclass under ``name`` (duplicates are an error)."""

    def decorator(cls: S) -> S:
        from .stage import Stage, StageConfig

        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise SoundstageError(f"@register_stage({name!r}): {cls!r} is not a soundstage Stage subclass")
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


def _load_entry_point(ep: EntryPoint) -> type["Stage"]:
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


def get_stage(name: str) -> type["Stage"]:
    """Return the Stage class registered as ``name``, importing its plugin on first use."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    eps = _entry_points()
    if name in eps:
        return _load_entry_point(eps[name])
    known = available_stages()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise StageNotFoundError(f"unknown stage plugin {name!r}{hint} (known: {', '.join(known) or 'none'})")


def list_stages() -> dict[str, type["Stage"] | SoundstageError]:
    """Load every available stage; a plugin that fails to import maps to its error instead."""
    result: dict[str, type[Stage] | SoundstageError] = {}
    for name in available_stages():
        try:
            result[name] = get_stage(name)
        except SoundstageError as exc:
            result[name] = exc
    return result
