"""What a stage declares without building anything: its config class, streams and token contract.

``recipe validate``, ``recipe show`` and ``soundstage plugins`` read only this, so they import no
torch or Lightning. A plugin puts its ``StageSpec`` subclass in a torch-free module, names it in the
``soundstage.stages`` entry-point group, and its ``Stage`` (``soundstage.stage``, a LightningModule)
inherits from it: ``class MyStage(MySpec, Stage)``; ``implementation()`` imports that class. A
``Stage`` subclass is its own spec, so a plugin may also register its stage class directly (then
validating its recipes imports it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .token_contract import TokenExpectation, TokenStream

if TYPE_CHECKING:
    from .stage import Stage


@dataclass
class StageConfig:
    """Base class of every stage's config dataclass; the single place a default lives."""


class StageSpec:
    """A stage's declarations: config class, consumed and produced streams, token contract, presets."""

    config_class: ClassVar[type[StageConfig]] = StageConfig
    consumes: ClassVar[tuple[str, ...]] = ()
    optional_consumes: ClassVar[tuple[str, ...]] = ()  # consumed streams a recipe may leave out
    produces: ClassVar[tuple[str, ...]] = ()
    monitor: ClassVar[str | None] = None  # validation metric that picks the "best" checkpoint (min)
    trainable: ClassVar[bool] = True
    # A job stage (trainable=False) whose model is exported after run(), e.g. a pretrained codec it wraps.
    exports_model: ClassVar[bool] = False
    stage_name: ClassVar[str] = ""  # set by @register_stage

    @classmethod
    def implementation(cls) -> type["Stage"]:
        """The ``Stage`` class that trains or runs this spec (imported here, on first use)."""
        raise NotImplementedError(f"{cls.__name__} must implement implementation() (return its Stage class)")

    @classmethod
    def check_upstream(cls, config: StageConfig, upstream: dict[str, tuple[type["StageSpec"], StageConfig]]) -> list[str]:
        """Cross-stage contract checks at recipe-validation time (vocab sizes, levels, rates).

        ``upstream`` maps every stage this one needs, directly or transitively, to (spec, config).
        Return problems as messages; no model is built here.
        """
        return []

    @classmethod
    def config_presets(cls) -> dict[str, dict[str, Any]]:
        """Named configs a recipe can start from (``config: {preset: small, lr: 1e-4}``); default: none."""
        return {}

    @classmethod
    def token_streams(cls, config: StageConfig, upstream: dict[str, TokenStream]) -> dict[str, TokenStream]:
        """The token streams this stage makes, by kind (``semantic`` / ``acoustic``), from its config alone.

        A stage that lists ``semantic`` or ``acoustic`` in ``produces`` must return its stream here, so
        ``recipe validate`` can check its consumers before anything trains. ``upstream`` holds the
        streams the stages it needs make: a stage that re-emits them (tokenize) returns them, changed
        where it changes them. Default: none.
        """
        return {}

    @classmethod
    def expected_streams(cls, config: StageConfig) -> list[TokenExpectation]:
        """The token streams this stage reads and what it needs of them (vocabulary, levels, rate).

        Checked against the producers' ``token_streams`` at ``recipe validate`` and against what the
        tokens stage recorded when the stage starts. Default: none.
        """
        return []

    @classmethod
    def memory_floor(cls, config: StageConfig) -> list[tuple[str, float, str]]:
        """Lower bounds of the memory one training batch takes, from the config alone.

        Returns ``(config key, bytes, what)`` rows, e.g. ``("batch_size", 4e12, "16 x 1.0 s of float32
        audio")``; the runner refuses, before training, a stage whose floor exceeds the machine's memory.
        """
        return []


def config_fields(config_class: type, prefix: str = "", values: Any = None) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, comment) for every field of a config dataclass, for ``soundstage plugins``;
    a nested config's fields come one by one under its dotted name (``model.d_model``), with the defaults
    of the instance its parent makes (``values``).

    The comment is the field's documentation as written in the source: the ``#`` comment on its line,
    else the comment lines right above it (of the class that declares the field).
    """
    comments: dict[str, str] = {}
    for klass in reversed(config_class.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_field_comments(klass))
    rows = []
    for f in dataclasses.fields(config_class):
        if values is not None:
            default = getattr(values, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "???"
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            rows += config_fields(type(default), f"{prefix}{f.name}.", default)
            continue
        type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append((prefix + f.name, type_name, default, comments.get(f.name, "")))
    return rows


def _field_comments(klass: type) -> dict[str, str]:
    """Field name -> its source comment (trailing, else the block just above) in ``klass``'s own body."""
    import inspect
    import re

    try:
        lines = inspect.getsource(klass).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"\s+(\w+)\s*:[^=#]*(?:=[^#]*)?(?:#\s*(.*))?$", line)
        if match and not stripped.startswith(("def ", "@", "return")):
            out[match.group(1)] = (match.group(2) or " ".join(above)).strip()
        above = []
    return out
