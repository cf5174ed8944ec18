"""Recipes: YAML files composed with ``defaults:``, overridden with ``key=value`` and validated by type.

Loading never builds a model: it merges includes and overrides, resolves interpolations
(``${data.sample_rate}``), validates every section against its dataclass, checks ``needs:``
and that each stage's consumed streams are produced by a stage it needs.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import RangeError, build_config, check_ranges, config_to_dict
from .dag import topological_order
from .errors import RecipeError, SoundstageError
from .precision import PRECISIONS
from .recipe_schema import DataConfig, RecipeSchema
from .registry import get_spec, get_stage
from .token_contract import TOKEN_KINDS, TokenStream, streams_problems
from .trainer import TrainerConfig

if TYPE_CHECKING:  # stage.py imports Lightning: validating a recipe never needs it (specs are torch-free)
    from .stage import Stage
    from .stage_spec import StageConfig, StageSpec

#: Streams that come from the dataset itself rather than from a stage.
DATASET_STREAMS = frozenset({"audio"})


@dataclass
class StagePlan:
    """One validated stage of a recipe: plugin spec, typed config, trainer and wiring."""

    name: str
    plugin: str
    spec: type[StageSpec]  # the plugin's declarations (validation reads only these)
    config: StageConfig
    trainer: TrainerConfig
    needs: list[str]
    checkpoint: str | None = None
    trainer_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def stage_class(self) -> type[Stage]:
        """The plugin's Stage class (imports its model code: torch, Lightning)."""
        return get_stage(self.plugin)


@dataclass
class Recipe:
    """A fully resolved, validated recipe; ``stages`` is in execution order."""

    name: str
    source: str
    description: str
    seed: int
    run_root: str
    data: DataConfig
    trainer: TrainerConfig
    stages: dict[str, StagePlan]
    shared: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data, every stage config with all its defaults filled in."""
        return {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "run_root": self.run_root,
            "shared": dict(self.shared),
            "data": config_to_dict(self.data),
            "trainer": config_to_dict(self.trainer),
            "stages": {
                s.name: {
                    "plugin": s.plugin,
                    "needs": list(s.needs),
                    "checkpoint": s.checkpoint,
                    "trainer": dict(s.trainer_overrides),
                    "config": config_to_dict(s.config),
                }
                for s in self.stages.values()
            },
        }

    def to_yaml(self) -> str:
        """The resolved recipe as YAML (what ``soundstage recipe show`` prints and runs save)."""
        return OmegaConf.to_yaml(OmegaConf.create(self.to_dict()))


def builtin_recipes() -> dict[str, Path]:
    """Names and paths of the recipes shipped with the package."""
    root = resources.files("soundstage.recipes")
    return {p.name[:-5]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def find_recipe(ref: str, relative_to: Path | None = None) -> Path:
    """Resolve a recipe reference: a file path, a path relative to an including recipe, or a built-in name."""
    candidates = [Path(ref).expanduser()]
    if relative_to is not None:
        candidates.insert(0, relative_to / ref)
    for c in candidates:
        for path in (c, c.with_name(c.name + ".yaml")):
            if path.is_file():
                return path.resolve()
    builtin = builtin_recipes()
    name = Path(ref).name.removesuffix(".yaml")
    if name in builtin and not Path(ref).parent.name:
        return builtin[name]
    raise RecipeError(f"recipe {ref!r} not found (not a file; built-in recipes: {', '.join(sorted(builtin))})")


def _load_tree(path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """Load one YAML file and merge the recipes its ``defaults:`` list includes under it."""
    if path in chain:
        raise RecipeError(f"{path}: 'defaults' include cycle: {' -> '.join(p.name for p in chain + (path,))}")
    try:
        node = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax errors carry line numbers
        raise RecipeError(f"{path}: cannot parse YAML: {exc}") from exc
    if not isinstance(node, DictConfig):
        raise RecipeError(f"{path}: a recipe must be a mapping at the top level")
    includes = node.pop("defaults", [])
    if isinstance(includes, str):
        includes = [includes]
    merged = OmegaConf.create({})
    for ref in includes or []:
        merged = OmegaConf.merge(merged, _load_tree(find_recipe(str(ref), path.parent), chain + (path,)))
    _replace_replugged_stages(merged, node)
    merged = OmegaConf.merge(merged, node)
    if "name" not in node:
        merged.name = path.stem  # an extending recipe gets its own name, not its parent's
    return merged


def _replace_replugged_stages(parent: DictConfig, child: DictConfig) -> None:
    """A stage whose ``plugin:`` the extending recipe changes starts afresh: the parent's config, trainer
    and needs of that stage belonged to another plugin, so they are dropped rather than merged in."""
    theirs, ours = parent.get("stages"), child.get("stages")
    if not (OmegaConf.is_dict(theirs) and OmegaConf.is_dict(ours)):
        return
    for name in list(ours.keys()):
        entry, inherited = ours.get(name), theirs.get(name)
        if OmegaConf.is_dict(entry) and OmegaConf.is_dict(inherited) and "plugin" in entry and "plugin" in inherited \
                and entry.plugin != inherited.plugin:
            del theirs[name]


def _drop_removed_stages(tree: DictConfig) -> None:
    """``stages.<name>: null`` (in an extending recipe or as an override) removes an inherited stage."""
    stages = tree.get("stages")
    if OmegaConf.is_dict(stages):
        plain = OmegaConf.to_container(stages, resolve=False)
        for name in [k for k, v in plain.items() if v is None]:
            del stages[name]


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """``key.path=value`` strings (values parsed as YAML) into a config."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise RecipeError(f"bad override {item!r}: expected key.path=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise RecipeError(f"bad override: {exc}") from exc


def load_recipe(ref: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Load, merge, override, resolve and validate a recipe (no model is built)."""
    path = find_recipe(str(ref))
    source = str(path)
    tree = OmegaConf.merge(_load_tree(path), parse_overrides(overrides))
    _drop_removed_stages(tree)
    schema: RecipeSchema = build_config(RecipeSchema, tree, source=source)
    check_trainer(schema.trainer, "trainer", source)
    if not schema.stages:
        raise RecipeError(f"{source}: key 'stages': the recipe defines no stages")

    needs = {name: list(entry.needs) for name, entry in schema.stages.items()}
    order = topological_order(needs, source)
    plans: dict[str, StagePlan] = {}
    for name in order:
        entry = schema.stages[name]
        where = f"stages.{name}"
        try:
            spec = get_spec(entry.plugin)
        except SoundstageError as exc:
            raise RecipeError(f"{source}: key '{where}.plugin': {exc}") from exc
        config_tree = _with_preset(spec, entry.config, f"{where}.config", source)
        config = build_config(spec.config_class, config_tree, where=f"{where}.config", source=source)
        trainer_overrides = dict(entry.trainer or {})
        trainer = build_config(
            TrainerConfig, {**config_to_dict(schema.trainer), **trainer_overrides}, where=f"{where}.trainer", source=source
        )
        check_trainer(trainer, f"{where}.trainer", source)
        if trainer.strategy.startswith("fsdp") and trainer.accelerator == "cpu":
            raise RecipeError(
                f"{source}: key '{where}.trainer.strategy': fsdp needs accelerator gpu (Lightning's FSDP runs on "
                f"CUDA only); use strategy=ddp on CPU"
            )
        plans[name] = StagePlan(name, entry.plugin, spec, config, trainer, needs[name], entry.checkpoint, trainer_overrides)
    _check_streams(plans, source)
    _check_sample_rates(plans, schema.data, source)
    return Recipe(schema.name, source, schema.description, schema.seed, schema.run_root, schema.data, schema.trainer,
                  plans, dict(schema.shared or {}))


def _with_preset(spec: type[StageSpec], tree: Any, where: str, source: str) -> Any:
    """``config: {preset: NAME, ...}``: the plugin's named preset (``StageSpec.config_presets``) under the given keys."""
    if isinstance(tree, dict):
        tree = OmegaConf.create(tree)
    if not OmegaConf.is_dict(tree) or "preset" not in tree:
        return tree
    name = str(tree.preset)
    presets = spec.config_presets()
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(presets) or f"{spec.stage_name} has none"
        raise RecipeError(f"{source}: key '{where}.preset': unknown preset {name!r} ({hint}known: {known})")
    rest = OmegaConf.masked_copy(tree, [k for k in tree.keys() if k != "preset"])
    return OmegaConf.merge(OmegaConf.create(presets[name]), rest)


def check_trainer(trainer: TrainerConfig, where: str, source: str) -> None:
    """Range checks of the trainer keys (here rather than in TrainerConfig, which only mirrors Lightning's)."""
    try:
        check_ranges(trainer, at_least_one=("num_nodes", "accumulate_grad_batches", "check_val_every_n_epoch",
                                            "log_every_n_steps", "checkpoint_every_n_steps", "num_threads"),
                     positive=("val_check_interval",),
                     non_negative=("gradient_clip_val", "limit_val_batches", "ema_start_step"),
                     fraction=("ema_decay",))
        for key in ("max_steps", "max_epochs"):  # -1: no limit (Lightning's convention)
            value = getattr(trainer, key)
            if value is not None and value != -1 and value < 1:
                raise RangeError(key, f"must be -1 (no limit) or >= 1, got {value}")
        if trainer.precision not in PRECISIONS:
            raise RangeError("precision", f"must be one of {', '.join(PRECISIONS)}; got {trainer.precision!r}")
        if trainer.num_sanity_val_steps < -1:
            raise RangeError("num_sanity_val_steps", f"must be -1 (all) or >= 0, got {trainer.num_sanity_val_steps}")
    except RangeError as exc:
        raise RecipeError(f"{source}: key '{where}.{exc.key}': {exc.reason}") from exc


def _check_streams(plans: dict[str, StagePlan], source: str) -> None:
    """Each consumed stream must come from the dataset or from a stage listed in ``needs``."""
    for plan in plans.values():
        provided = set(DATASET_STREAMS)
        for dep in plan.needs:
            provided |= set(plans[dep].spec.produces)
        missing = [s for s in plan.spec.consumes if s not in provided and not _optional(plan, s)]
        if missing:
            raise RecipeError(
                f"{source}: key 'stages.{plan.name}.needs': plugin {plan.plugin!r} consumes {missing} "
                f"but no stage in needs ({plan.needs or 'none'}) produces it"
            )
        ancestors = _ancestors(plans, plan.name)
        problems = plan.spec.check_upstream(plan.config, {d: (plans[d].spec, plans[d].config) for d in ancestors})
        for problem in problems:
            raise RecipeError(f"{source}: stages.{plan.name}: {problem}")
    _check_token_contracts(plans, source)


def _check_token_contracts(plans: dict[str, StagePlan], source: str) -> None:
    """Every consumer's expected token streams against what its upstream stages make (all problems at once)."""
    made: dict[str, dict[str, tuple[str, TokenStream | None]]] = {}  # stage -> kind -> (origin stage, stream)
    problems = []
    for plan in plans.values():  # execution order
        visible: dict[str, tuple[str, TokenStream | None]] = {}
        for dep in _ancestors(plans, plan.name):
            visible.update(made[dep])
        problems += streams_problems(plan.name, plan.spec.expected_streams(plan.config), visible)
        try:
            streams = plan.spec.token_streams(plan.config, {k: v for k, (_, v) in visible.items() if v})
        except SoundstageError as exc:
            raise RecipeError(f"{source}: stages.{plan.name}: {exc}") from exc
        own: dict[str, tuple[str, TokenStream | None]] = {}
        for kind in plan.spec.produces:
            if kind in TOKEN_KINDS:
                own[kind] = (plan.name, streams.get(kind))
        for kind, stream in streams.items():
            passed_on = kind in visible and visible[kind][1] == stream  # re-emitted unchanged: keep its origin
            own[kind] = visible[kind] if passed_on else (plan.name, stream)
        made[plan.name] = own
    if problems:
        raise RecipeError(f"{source}: " + "\n  ".join(problems))


def _check_sample_rates(plans: dict[str, StagePlan], data: DataConfig, source: str) -> None:
    """A stage that reads the dataset's audio and has a ``sample_rate`` must match ``data.sample_rate``."""
    for plan in plans.values():
        rate = getattr(plan.config, "sample_rate", None)
        if "audio" in plan.spec.consumes and rate is not None and int(rate) != int(data.sample_rate):
            raise RecipeError(
                f"{source}: key 'stages.{plan.name}.config.sample_rate': {rate} Hz but data.sample_rate is "
                f"{data.sample_rate} Hz (interpolate it: ${{data.sample_rate}})"
            )


def _ancestors(plans: dict[str, StagePlan], name: str) -> list[str]:
    """Every stage ``name`` needs, directly or through other stages, in execution order."""
    seen: set[str] = set()
    stack = list(plans[name].needs)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(plans[dep].needs)
    return [n for n in plans if n in seen]


def _optional(plan: StagePlan, stream: str) -> bool:
    return stream in getattr(plan.spec, "optional_consumes", ())

