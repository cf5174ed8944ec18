"""CLI verbs over finished runs: ``generate``, ``export`` and ``eval``."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_app_commands(sub: argparse._SubParsersAction) -> None:
    """Add the generate / export / eval verbs to the main parser."""
    p = sub.add_parser("generate", help="continue a prompt, generate unconditionally, or from semantic tokens")
    p.add_argument("path", help="run directory or exported bundle")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--prompt", help="prompt audio file (any rate/channels libsndfile reads)")
    mode.add_argument("--unconditional", action="store_true", help="generate without a prompt")
    mode.add_argument("--semantic", help=".npy file of semantic token ids [T] or [B, T] (acoustic generation)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate (continuation / unconditional)")
    p.add_argument("--out", required=True, help="output WAV (several samples: out_00.wav, out_01.wav, ...)")
    p.add_argument("--batch", type=int, default=1, help="unconditional samples to draw")
    p.add_argument("--no-prompt-in-output", action="store_true", help="write only the continuation")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="cpu")
    for stage in ("semantic", "coarse", "fine"):
        p.add_argument(f"--{stage}-temperature", type=float)
        p.add_argument(f"--{stage}-top-k", type=int)
        p.add_argument(f"--{stage}-top-p", type=float)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("export", help="bundle a run's models, recipe and model card for generation")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_export)

    try:
        from .evaluation.cli import add_eval_command
    except ImportError:
        return
    add_eval_command(sub)


def _sampling(args: argparse.Namespace) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for stage in ("semantic", "coarse", "fine"):
        values = {
            "temperature": getattr(args, f"{stage}_temperature"),
            "top_k": getattr(args, f"{stage}_top_k"),
            "top_p": getattr(args, f"{stage}_top_p"),
        }
        out[stage] = {k: v for k, v in values.items() if v is not None}
    return out


def _cmd_generate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from soundstage.data.audio_io import write_wav

    from .errors import SoundstageError
    from .inference import Pipeline

    pipe = Pipeline.load(args.path, device=args.device, sampling=_sampling(args))
    if args.prompt:
        from soundstage.data.audio_io import BadAudio, read_audio

        try:
            wave, sr, _ = read_audio(args.prompt)
        except BadAudio as exc:
            raise SoundstageError(f"{args.prompt}: cannot read prompt audio ({exc})") from exc
        waves = pipe.continue_audio(wave, args.seconds, sample_rate=sr, include_prompt=not args.no_prompt_in_output,
                                    seed=args.seed)
    elif args.unconditional:
        waves = pipe.generate(args.seconds, batch=args.batch, seed=args.seed)
    else:
        try:
            ids = torch.from_numpy(np.load(args.semantic, allow_pickle=False)).long()
        except (OSError, ValueError) as exc:
            raise SoundstageError(f"{args.semantic}: cannot read semantic ids ({exc})") from exc
        waves = pipe.from_semantic(ids, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [out] if len(waves) == 1 else [out.with_name(f"{out.stem}_{i:02d}{out.suffix}") for i in range(len(waves))]
    for name, wave in zip(names, waves):
        write_wav(name, wave.float().cpu().numpy(), pipe.sample_rate)
        print(f"wrote {name} ({wave.shape[-1] / pipe.sample_rate:.2f}s at {pipe.sample_rate} Hz)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_bundle

    out = export_bundle(args.run_dir, args.out_dir, overwrite=args.overwrite)
    print(f"exported {args.run_dir} -> {out}")
    return 0
