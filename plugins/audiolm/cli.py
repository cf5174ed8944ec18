"""CLI verbs over finished runs: ``generate``, ``export`` and ``eval``."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

DEFAULT_MAX_SECONDS = 600.0
PROGRESS_FROM_SECONDS = 10.0  # outputs at least this long show a progress bar per decoding pass
SAMPLED_STAGES = ("semantic", "coarse", "fine", "soundstorm")  # --<stage>-temperature / -top-k / -top-p


def add_app_commands(sub: argparse._SubParsersAction) -> None:
    """Add the generate / export / eval verbs to the main parser."""
    p = sub.add_parser("generate", help="continue a prompt, generate unconditionally, or from semantic tokens")
    p.add_argument("path", help="run directory or exported bundle")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--prompt", help="prompt audio file (any rate/channels libsndfile reads)")
    mode.add_argument("--unconditional", action="store_true", help="generate without a prompt")
    mode.add_argument("--semantic", help=".npy file of semantic token ids [T] or [B, T] (acoustic generation)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate (continuation / unconditional)")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help="refuse a --seconds above this (generation time grows with the square of the length)")
    p.add_argument("--out", required=True, help="output WAV (several samples: out_00.wav, out_01.wav, ...)")
    p.add_argument("--batch", type=int, default=1, help="unconditional samples to draw")
    p.add_argument("--no-prompt-in-output", action="store_true", help="write only the continuation")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--acoustic", choices=("coarse_fine", "soundstorm"),
                   help="acoustic generator, where the run trained both (default: coarse_fine)")
    add_sampling_args(p)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("export", help="bundle a run's models, recipe and model card for generation")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_export)

    try:
        from .evaluation.cli import add_compare_command, add_eval_command
    except ImportError:
        return
    add_eval_command(sub)
    add_compare_command(sub)


def check_generate_args(args: argparse.Namespace) -> None:
    """One-line errors for lengths and counts ``generate`` cannot honour (before any model is loaded)."""
    from soundstage.errors import SoundstageError

    if not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise SoundstageError(f"--max-seconds must be finite and > 0, got {args.max_seconds}")
    if not args.semantic:
        if not (math.isfinite(args.seconds) and args.seconds > 0):
            raise SoundstageError(f"--seconds must be finite and > 0, got {args.seconds}")
        if args.seconds > args.max_seconds:
            raise SoundstageError(f"--seconds {args.seconds:g} is above --max-seconds {args.max_seconds:g}; "
                                  f"raise --max-seconds to generate that much")
    if args.batch < 1:
        raise SoundstageError(f"--batch must be >= 1, got {args.batch}")


def _check_length(pipe, seconds: float) -> None:
    """At least one semantic token must be generated (its rate comes from the loaded model)."""
    from soundstage.errors import SoundstageError

    rate = float(pipe.models["semantic_lm"].config.semantic_rate)
    if round(seconds * rate) < 1:
        raise SoundstageError(f"--seconds {seconds:g} is shorter than one semantic token ({1 / rate:g} s at {rate:g} "
                              f"tokens/s); ask for at least {1 / rate:g} s")


def float_list(text: str) -> list[float]:
    """A comma-separated list of numbers ("1.5,1,1")."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1.5,1,1, got {text!r}") from None


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Overrides of every sampled stage's temperature / top-k / top-p, and the coarse LM's own options (generate and eval)."""
    for stage in SAMPLED_STAGES:
        p.add_argument(f"--{stage}-temperature", type=float, help=f"the {stage} stage's sampling temperature (0 = greedy)")
        p.add_argument(f"--{stage}-top-k", type=int, help=f"the {stage} stage's top-k (0 = off)")
        p.add_argument(f"--{stage}-top-p", type=float, help=f"the {stage} stage's nucleus top-p")
    p.add_argument("--coarse-guidance", type=float, help="classifier-free guidance of the coarse LM (its "
                   "sampling.guidance; higher follows the semantic tokens more, keeps less of the prompt's voice)")
    p.add_argument("--coarse-level-guidance", type=float_list, metavar="G0,G1,..",
                   help="the coarse LM's guidance per RVQ level, e.g. 1.5,1,1 (its sampling.level_guidance)")
    p.add_argument("--coarse-level-temperature", type=float_list, metavar="T0,T1,..",
                   help="the coarse LM's temperature per RVQ level (its sampling.level_temperature)")
    p.add_argument("--coarse-candidates", type=int, help="best of N coarse continuations of every "
                   "sampling.candidate_seconds, by how well their audio re-tokenizes to the semantic tokens "
                   "(the coarse LM's sampling.candidates; N x the coarse decoding time)")
    p.add_argument("--decode-levels", type=int, metavar="N", help="decode only the first N RVQ levels of the "
                   "generated codes (e.g. the coarse LM's, leaving out a fine LM that is at chance; default all)")


def sampling_overrides(args: argparse.Namespace) -> dict[str, dict]:
    """The per-stage sampling overrides given on the command line, as ``Pipeline.load`` takes them."""
    out: dict[str, dict] = {}
    for stage in SAMPLED_STAGES:
        values = {
            "temperature": getattr(args, f"{stage}_temperature"),
            "top_k": getattr(args, f"{stage}_top_k"),
            "top_p": getattr(args, f"{stage}_top_p"),
        }
        if stage == "coarse":
            values |= {"guidance": args.coarse_guidance, "candidates": args.coarse_candidates,
                       "level_guidance": args.coarse_level_guidance, "level_temperature": args.coarse_level_temperature}
        out[stage] = {k: v for k, v in values.items() if v is not None}
    if args.decode_levels is not None:
        out["codec"] = {"levels": args.decode_levels}
    return out


def _cmd_generate(args: argparse.Namespace) -> int:
    from soundstage.plugins.lm.sampling import decoding_progress

    from .pipeline import Pipeline

    check_generate_args(args)
    pipe = Pipeline.load(args.path, device=args.device, sampling=sampling_overrides(args), acoustic=args.acoustic)
    if not args.semantic:
        _check_length(pipe, args.seconds)
    with decoding_progress(args.semantic is not None or args.seconds >= PROGRESS_FROM_SECONDS):
        waves = _generate(args, pipe)
    _write(args, pipe, waves)
    return 0


def _generate(args: argparse.Namespace, pipe):
    import numpy as np
    import torch

    from soundstage.errors import SoundstageError

    if args.prompt:
        from soundstage.data.audio_io import BadAudio, read_audio

        try:
            wave, sr, _ = read_audio(args.prompt)
        except BadAudio as exc:
            raise SoundstageError(f"{args.prompt}: cannot read prompt audio ({exc})") from exc
        return pipe.continue_audio(wave, args.seconds, sample_rate=sr, include_prompt=not args.no_prompt_in_output,
                                   seed=args.seed)
    if args.unconditional:
        return pipe.generate(args.seconds, batch=args.batch, seed=args.seed)
    try:
        ids = torch.from_numpy(np.load(args.semantic, allow_pickle=False)).long()
    except (OSError, ValueError) as exc:
        raise SoundstageError(f"{args.semantic}: cannot read semantic ids ({exc})") from exc
    return pipe.from_semantic(ids, seed=args.seed)


def _write(args: argparse.Namespace, pipe, waves) -> None:
    from soundstage.data.audio_io import write_wav

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [out] if len(waves) == 1 else [out.with_name(f"{out.stem}_{i:02d}{out.suffix}") for i in range(len(waves))]
    for name, wave in zip(names, waves):
        write_wav(name, wave.float().cpu().numpy(), pipe.sample_rate)
        print(f"wrote {name} ({wave.shape[-1] / pipe.sample_rate:.2f}s at {pipe.sample_rate} Hz)")


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_bundle

    out = export_bundle(args.run_dir, args.out_dir, overwrite=args.overwrite)
    print(f"exported {args.run_dir} -> {out}")
    return 0
