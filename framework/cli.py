"""``soundstage`` command line: each verb maps to a module (run/fit -> pipeline, recipe -> recipe, ...)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import SoundstageError


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe name (built-in) or path to a YAML file")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. trainer.max_steps=10")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundstage", description="Train AudioLM-style audio generators from YAML recipes."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    p = sub.add_parser("run", help="run a recipe's stages in order into a run directory")
    _add_recipe_args(p)
    p.add_argument("--stages", help="comma-separated subset of stages to run")
    p.add_argument("--restart", default="", help="comma-separated stages to forget and train again")
    p.add_argument("--run-dir", help="run directory (default: <run_root>/<recipe name>)")
    p.add_argument("--reuse-from", metavar="RUN_DIR",
                   help="another run directory: link in its finished stages that this recipe would make the same, "
                        "train the rest (ablate one stage without retraining its upstream)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what each stage would do (train, resume, skip, reuse, or refused as stale) and change nothing")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("fit", help="train one stage of a recipe (its needs must be done)")
    p.add_argument("recipe")
    p.add_argument("stage")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--run-dir")
    p.set_defaults(func=_cmd_fit)

    recipe = sub.add_parser("recipe", help="list, show or validate recipes").add_subparsers(dest="action", metavar="ACTION")
    recipe.required = True
    p = recipe.add_parser("list", help="list the built-in recipes")
    p.set_defaults(func=_cmd_recipe_list)
    p = recipe.add_parser("show", help="print the fully resolved recipe")
    _add_recipe_args(p)
    p.add_argument("--summary", action="store_true", help="also build each stage's model and print parameter counts")
    p.set_defaults(func=_cmd_recipe_show)
    p = recipe.add_parser("validate", help="check names, types, the DAG and cross-stage contracts (builds no model)")
    _add_recipe_args(p)
    p.set_defaults(func=_cmd_recipe_validate)

    p = sub.add_parser("plugins", help="list registered stages with their config fields and defaults")
    p.add_argument("pattern", nargs="?", default="*", help="glob on stage names")
    p.set_defaults(func=_cmd_plugins)

    _add_optional_commands(sub)
    return parser


COMMANDS_GROUP = "soundstage.commands"  # entry points: name -> ``add_commands(subparsers)`` of a package's verbs


def _add_optional_commands(sub: argparse._SubParsersAction) -> None:
    """Verbs that live in other packages (data tools; the AudioLM application's generate, export, eval),
    declared in the ``soundstage.commands`` entry-point group. A provider's module must import no torch
    at import time (the CLI starts in well under a second); one that fails to import is skipped."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            add_commands = ep.load()
        except ImportError:
            continue  # an optional package that is not installed
        add_commands(sub)


def _split(value: str | None) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import PipelineRunner
    from .recipe import load_recipe

    pipeline = PipelineRunner(load_recipe(args.recipe, args.overrides), args.run_dir)
    if args.dry_run:
        return _dry_run(pipeline, _split(args.stages) or None, _split(args.restart), args.reuse_from)
    results = pipeline.run(_split(args.stages) or None, restart=_split(args.restart), reuse_from=args.reuse_from)
    pipeline.log("summary: " + ", ".join(f"{r.name}={r.status}" for r in results) + f" (run dir: {pipeline.run_dir})")
    return 0


def _dry_run(pipeline, stages: list[str] | None, restart: list[str], reuse_from: str | None = None) -> int:
    """Print the plan; exit 2 (with the refusal a real run would give) when the run would not start."""
    from .memory import check_memory
    from .run_lock import lock_holder
    from .run_plan import BUILDS, check_plan, format_plan

    pipeline.run(stages, restart=restart, dry_run=True, reuse_from=reuse_from)
    print(f"dry run: {pipeline.run_dir}")
    print(format_plan(pipeline.statuses))
    holder = lock_holder(pipeline.run_dir)
    if holder:
        print(f"note: the run directory is in use by PID {holder.get('pid', '?')} on {holder.get('host', '?')}")
    check_plan(pipeline, pipeline.statuses)
    check_memory(pipeline.recipe, [n for n, s in pipeline.statuses.items() if s.action in BUILDS])
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from .runner import PipelineRunner
    from .recipe import load_recipe

    PipelineRunner(load_recipe(args.recipe, args.overrides), args.run_dir).run([args.stage])
    return 0


def _cmd_recipe_list(args: argparse.Namespace) -> int:
    from .recipe import builtin_recipes

    for name, path in sorted(builtin_recipes().items()):
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        print(f"{name:20s} {first}")
    return 0


def _cmd_recipe_show(args: argparse.Namespace) -> int:
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    print(recipe.to_yaml(), end="")
    if args.summary:
        print("# parameters")
        for plan in recipe.stages.values():
            model = plan.stage_class(plan.config)
            n = sum(p.numel() for p in model.parameters())
            print(f"#   {plan.name:16s} {plan.plugin:18s} {n:>14,d}")
    return 0


def _cmd_recipe_validate(args: argparse.Namespace) -> int:
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    order = " -> ".join(recipe.stages)
    print(f"{recipe.source}: OK ({len(recipe.stages)} stages: {order})")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    import fnmatch

    from .registry import available_stages, get_spec
    from .stage_spec import config_fields

    unavailable, shown = [], 0
    for name in available_stages():
        if not fnmatch.fnmatch(name, args.pattern):
            continue  # only the specs asked for are imported
        shown += 1
        try:
            cls = get_spec(name)
        except SoundstageError as exc:
            cls = exc
        if isinstance(cls, SoundstageError):
            print(f"{name}  [unavailable: {cls}]\n")
            unavailable.append(name)
            continue
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}  ({cls.__module__}.{cls.__name__}) {doc}")
        print(f"  consumes: {', '.join(cls.consumes) or '-'}   produces: {', '.join(cls.produces) or '-'}")
        for field_name, type_name, default, comment in config_fields(cls.config_class):
            print(f"  {field_name:28s} {type_name:16s} = {default!r}" + (f"  # {comment}" if comment else ""))
        print()
    if not shown:
        print(f"error: no stage matches {args.pattern!r}", file=sys.stderr)
        return 2
    return 1 if unavailable else 0  # a plugin that cannot import is an error for scripts that check


def _one_line(message: str) -> str:
    """Errors re-raised from DataLoader workers carry the worker's traceback; keep the original line."""
    if "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``soundstage`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (argparse stops the positional list at an option)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        return int(args.func(args) or 0)
    except SoundstageError as exc:
        if args.debug:
            raise
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except BrokenPipeError:  # `soundstage plugins | head`: the reader left; no traceback (Python's signal docs)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a file-size limit, a read-only or vanished path
        if args.debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
