"""``soundstage eval RUN_DIR`` and ``soundstage eval-compare A B``: the evaluation verbs (wired into ``soundstage.cli``)."""
from __future__ import annotations

import argparse

from ..cli import add_sampling_args, sampling_overrides


def add_eval_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval RUN_DIR [--num-clips N] [--prompt-seconds P] [--seconds S] ...``."""
    p = subparsers.add_parser(
        "eval", help="evaluate a finished run as AudioLM does: phone error rate, speaker similarity, perplexities, "
                     "and which stage misses its target")
    p.add_argument("run_dir", help="run directory written by `soundstage run`")
    p.add_argument("--num-clips", "--num-prompts", type=int, default=64,
                   help="held-out clips in the table (default 64; each figure's 95%% interval shows what they resolve)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="acoustic / continuation prompt (default 3)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds generated per continuation (default 3)")
    p.add_argument("--num-utterances", type=int, default=16, help="held-out utterances for the codec's signal figures and PNMI")
    p.add_argument("--recognizer-steps", type=int, default=600,
                   help="training steps of the phone recognizer (once per corpus, cached; default 600)")
    p.add_argument("--speaker-steps", type=int, default=500,
                   help="training steps of the speaker model (once per corpus, cached; default 500)")
    p.add_argument("--probe-steps", type=int, default=400,
                   help="training steps of the phone probe on the semantic ids (once per tokenizer, cached; 0 = no probe)")
    p.add_argument("--cache-dir", default="~/.cache/soundstage/eval_models", help="where the measuring models are cached")
    p.add_argument("--acoustic", choices=("coarse_fine", "soundstorm"), default=None,
                   help="the acoustic generator to evaluate when the run trained both (default coarse_fine)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", help="where eval.json, report.html and the media go (default RUN_DIR/eval): "
                                     "to keep the evaluations of several sampling settings side by side")
    add_sampling_args(p)
    p.set_defaults(func=_cmd_eval)
    return p


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .evaluate import EvalConfig, evaluate_run
    from .phone_recognizer import PhoneRecognizerConfig
    from .protocol import ProtocolConfig
    from .speaker_embedding import SpeakerEmbeddingConfig
    from .token_probe import TokenProbeConfig

    cfg = EvalConfig(
        protocol=ProtocolConfig(num_clips=args.num_clips, prompt_seconds=args.prompt_seconds,
                                continuation_seconds=args.seconds, seed=args.seed),
        phones=PhoneRecognizerConfig(max_steps=args.recognizer_steps),
        speaker=SpeakerEmbeddingConfig(max_steps=args.speaker_steps),
        probe=TokenProbeConfig(max_steps=max(args.probe_steps, 1)), probe_utterances=200 if args.probe_steps > 0 else 0,
        num_utterances=args.num_utterances, cache_dir=args.cache_dir, acoustic=args.acoustic, device=args.device,
        seed=args.seed, sampling=sampling_overrides(args), out_dir=args.out_dir)
    figures = evaluate_run(args.run_dir, cfg)
    summary = {k: figures[k] for k in ("protocol", "lm", "diagnosis") if k in figures}
    if "protocol" in summary:  # the per-clip arrays are for eval.json, not the terminal
        summary["protocol"] = {k: v for k, v in summary["protocol"].items() if k not in ("per_clip", "clip_keys")}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def add_compare_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval-compare A B``: two evaluations of the same clips, B - A per figure with its paired 95% interval."""
    p = subparsers.add_parser(
        "eval-compare", help="compare two evaluations of the same held-out clips: B - A per figure, with the 95%% "
                             "interval of the difference (paired bootstrap over the clips)")
    p.add_argument("a", help="the baseline: an eval folder (RUN_DIR/eval) or its eval.json")
    p.add_argument("b", help="the other evaluation, of the same clips")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_compare)
    return p


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from .compare import compare, load_protocol

    lines = compare(load_protocol(args.a), load_protocol(args.b))
    if args.json:
        print(json.dumps(lines, indent=2))
        return 0
    print(f"{'row':22s} {'figure':20s} {'A':>7s} {'B':>7s}  B - A [95% interval]")
    for line in lines:
        span = line["interval"]
        diff = f"{line['difference']:+.3f}" + (f" [{span[0]:+.3f}, {span[1]:+.3f}]" if span else "")
        verdict = {True: "  resolved", False: "  within noise", None: ""}[line["resolved"]]
        if span == [0.0, 0.0]:
            verdict = "  identical"
        print(f"{line['row']:22s} {line['figure']:20s} {line['a']:7.3f} {line['b']:7.3f}  {diff}{verdict}")
    return 0
