"""Generation speed: audio seconds made per wall second, AR coarse + fine vs SoundStorm.

For 3, 10 and 30 s at batch 1 and 8, times with each acoustic generator: semantic ids -> codes (the
acoustic stage alone, ``acoustic_codes``), semantic ids -> waveform (plus the codec decoder,
``from_semantic``) and the whole pipeline (semantic LM included, ``generate``). The models are built from a shipped recipe pair with random weights (speed does
not depend on training): ``--size tiny`` = speech_tiny vs speech_tiny_soundstorm, ``small`` =
speech_small vs speech_small_soundstorm, ``paper`` = audiolm_paper's coarse_lm + fine_lm vs its
soundstorm stage; their parameter counts are printed next to the rates.

    python benchmarks/generation.py [--size small] [--device cpu|cuda] [--dtype bf16] [--threads 1] [--seconds 3 10 30] [--batch 1 8]

Prints one JSON object (and each measurement to stderr as it is made). ``speedup`` is SoundStorm's rate
over the AR stages' for each length and batch;
the issue's targets: >= 30x for 30 s on a CPU, and 30 s in under 0.5 s with the paper size on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from soundstage.plugins.lm.generation import AudioLMGenerator
from soundstage.recipe import load_recipe

RECIPES = {"tiny": ("speech_tiny", "speech_tiny_soundstorm"), "small": ("speech_small", "speech_small_soundstorm"),
           "paper": ("audiolm_paper", "audiolm_paper")}


def build(recipe_name: str, stages: tuple[str, ...], device: str) -> dict[str, torch.nn.Module]:
    """Randomly initialised models of ``stages`` from a recipe, in eval mode on ``device``."""
    recipe = load_recipe(recipe_name)
    return {s: recipe.stages[s].stage_class(recipe.stages[s].config).to(device).eval() for s in stages}


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def timed(fn, device: str, dtype: torch.dtype) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(RECIPES), default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: batch-1 decoding is fastest on a shared CPU)")
    ap.add_argument("--seconds", type=float, nargs="+", default=[3.0, 10.0, 30.0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: generate under bf16 autocast")
    ap.add_argument("--generators", nargs="+", choices=["coarse_fine", "soundstorm"], default=["coarse_fine", "soundstorm"])
    ap.add_argument("--what", nargs="+", choices=["codes", "waveform", "pipeline"], default=["codes", "waveform", "pipeline"],
                    help="codes: the acoustic stage alone; waveform: + codec decoder; pipeline: + semantic LM")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    torch.manual_seed(args.seed)
    ar_recipe, ss_recipe = RECIPES[args.size]
    models = build(ar_recipe, ("codec", "semantic", "semantic_lm", "coarse_lm", "fine_lm"), args.device)
    models |= build(ss_recipe, ("soundstorm",), args.device)
    generators = {
        "coarse_fine": AudioLMGenerator(models["semantic"], models["semantic_lm"], models["coarse_lm"], models["fine_lm"],
                                        models["codec"]),
        "soundstorm": AudioLMGenerator(models["semantic"], models["semantic_lm"], codec=models["codec"],
                                       soundstorm=models["soundstorm"]),
    }
    generators = {name: gen for name, gen in generators.items() if name in args.generators}
    ss = models["soundstorm"].config
    out: dict = {
        "size": args.size, "recipes": [ar_recipe, ss_recipe], "device": args.device, "dtype": args.dtype,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "params": {s: params(models[s]) for s in ("semantic_lm", "coarse_lm", "fine_lm", "soundstorm", "codec")},
        "soundstorm_passes_per_window": sum(ss.decoding.per_level(ss.num_quantizers)),
        "soundstorm_window_seconds": ss.window_seconds,
        "results": [],
    }
    out["params"]["coarse_plus_fine"] = out["params"]["coarse_lm"] + out["params"]["fine_lm"]
    rate = models["semantic_lm"].config.semantic_rate
    vocab = models["semantic_lm"].config.semantic_vocab_size
    for name, gen in generators.items():  # warm-up: first-call allocations and kernels
        timed(lambda: gen.from_semantic(torch.randint(0, vocab, (1, int(rate)), device=args.device)), args.device, dtype)
    for seconds in args.seconds:
        for batch in args.batch:
            ids = torch.randint(0, vocab, (batch, round(seconds * rate)), device=args.device)
            for name, gen in generators.items():
                for what, fn in (("codes", lambda: gen.acoustic_codes(ids)),
                                 ("waveform", lambda: gen.from_semantic(ids)),
                                 ("pipeline", lambda: gen.generate(seconds, batch=batch))):
                    if what not in args.what:
                        continue
                    wall = timed(fn, args.device, dtype)
                    row = {"generator": name, "what": what, "seconds": seconds, "batch": batch, "wall_s": round(wall, 3),
                           "audio_s_per_s": round(seconds * batch / wall, 3)}
                    out["results"].append(row)
                    print(json.dumps(row), flush=True, file=sys.stderr)
    speedup: dict = {}
    for what in ("codes", "waveform", "pipeline"):
        for seconds in args.seconds:
            for batch in args.batch:
                r = {row["generator"]: row["audio_s_per_s"] for row in out["results"]
                     if row["what"] == what and row["seconds"] == seconds and row["batch"] == batch}
                if len(r) == 2:
                    speedup.setdefault(what, {})[f"{seconds:g}s_batch{batch}"] = round(r["soundstorm"] / r["coarse_fine"], 2)
    out["speedup"] = speedup
    out["targets"] = {"cpu_30s_codes_speedup": 30.0, "gpu_paper_30s_codes_wall_s": 0.5}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
