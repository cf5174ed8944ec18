"""``soundstage eval RUN_DIR``: the evaluation verb (wired into ``soundstage.cli`` by ``add_eval_command``)."""
from __future__ import annotations

import argparse


def add_eval_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval RUN_DIR [--num-prompts N] [--seconds S] [--prompt-seconds P] [--device D] [--seed N]``."""
    p = subparsers.add_parser("eval", help="evaluate a finished run: codec, LM perplexities, PNMI, continuations")
    p.add_argument("run_dir", help="run directory written by `soundstage run`")
    p.add_argument("--num-prompts", type=int, default=4, help="prompts to continue (default 4)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds generated per prompt (default 2)")
    p.add_argument("--prompt-seconds", type=float, default=2.0, help="prompt length in seconds (default 2)")
    p.add_argument("--num-utterances", type=int, default=16, help="held-out utterances for codec/phone figures")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_eval)
    return p


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .evaluate import EvalConfig, evaluate_run

    cfg = EvalConfig(num_prompts=args.num_prompts, seconds=args.seconds, prompt_seconds=args.prompt_seconds,
                     num_utterances=args.num_utterances, device=args.device, seed=args.seed)
    figures = evaluate_run(args.run_dir, cfg)
    summary = {k: figures[k] for k in ("codec", "lm", "semantic_tokens", "voice_classifier", "continuation") if k in figures}
    print(json.dumps(summary, indent=2, default=str))
    return 0
