"""Static decoding's attention span: eager sampling vs the compiled static step attending over power-of-two
spans of the KV cache (``static_decoding.span_for``) vs over the whole block-sized cache.

    python benchmarks/decode_spans.py [--batch 64] [--tokens 120] [--d-model 128] [--layers 2] [--block 512]

Prints one JSON object: seconds per generation (best of ``--repeats``, after compiling every span) and
compiled / eager throughput ratios, all from the same process.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from soundstage.plugins.lm import static_decoding
from soundstage.plugins.lm.sampling import SamplingConfig, decode
from soundstage.plugins.lm.transformer import Transformer, TransformerConfig


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--tokens", type=int, default=120)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--block", type=int, default=512)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prompt = torch.zeros(args.batch, 1, dtype=torch.long, device=args.device)
    ranges = [(0, args.vocab)] * args.tokens
    out: dict = {"config": vars(args)}
    default_min = static_decoding.MIN_SPAN
    for label, min_span in (("spans", default_min), ("whole_cache", args.block)):
        torch.manual_seed(0)
        cfg = TransformerConfig(d_model=args.d_model, n_layer=args.layers, n_head=args.heads, block_size=args.block)
        model = Transformer(cfg, vocab_size=args.vocab).to(args.device).eval()
        static_decoding.MIN_SPAN = min_span
        try:
            decode(model, prompt, ranges, SamplingConfig(compile=True))  # compiles every span this generation reaches
            eager = best(lambda: decode(model, prompt, ranges, SamplingConfig()), args.repeats)
            compiled = best(lambda: decode(model, prompt, ranges, SamplingConfig(compile=True)), args.repeats)
        finally:
            static_decoding.MIN_SPAN = default_min
        out[label] = {"eager_s": round(eager, 3), "compiled_s": round(compiled, 3),
                      "compiled_over_eager": round(eager / compiled, 3)}
    out["spans_over_whole_cache"] = round(out["whole_cache"]["compiled_s"] / out["spans"]["compiled_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
