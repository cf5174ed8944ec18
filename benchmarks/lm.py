"""LM efficiency at the reference size: training MFU and batch-1 decoding vs the weight-streaming bound.

Both ratios use hardware rates measured in the same process, so they are comparable across machines:
- MFU = model FLOPs/s of a training step (forward + backward + AdamW, PaLM FLOP count)
  / the FLOP/s of a large fp32 ``torch.mm``.
- decode ratio = decoded tokens/s / (matrix-vector FLOP/s / (2 x parameters)), the rate at which the
  weights could be streamed through matrix-vector products of the model's total size.

    python benchmarks/lm.py [--repeats 5] [--profile] [--norm rmsnorm] [--device cuda --dtype bf16 --compile]
                            [--decode-batches 1,8,64]

On a GPU, ``--dtype bf16`` runs the step under bf16 autocast and measures the matmul rate in bf16 too,
so MFU is against the card's bf16 rate; ``--compile`` times the ``torch.compile``d model.
``--decode-batches`` adds sampling throughput per batch size, eager vs the static KV cache with the
compiled one-token step (``sampling.compile``); at batch 1 also the compiled rate over the bound.

Prints one JSON object. On a shared machine each rate is the best of ``repeats`` interleaved
measurements (fastest step over fastest matmul, fastest decode over fastest matvec), so a busy
neighbour during one measurement does not skew the ratio; the raw lists are printed too.
"""
from __future__ import annotations

import argparse
import json

import torch
from timing import best_time
import torch.nn.functional as F

from soundstage.plugins.lm.sampling import SamplingConfig, decode
from soundstage.plugins.lm.transformer import Transformer, TransformerConfig


def matmul_flops(n: int, repeats: int, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype``."""
    a, b, c = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(3))
    return 2 * n**3 / best_time(lambda: torch.mm(a, b, out=c), repeats)


def matvec_flops(numel: int, cols: int, repeats: int, device: str = "cpu") -> float:
    """FLOP/s of a matrix-vector product over a weight matrix of ``numel`` elements (too big for cache)."""
    rows = numel // cols
    w, x, y = torch.randn(rows, cols, device=device), torch.randn(cols, device=device), torch.empty(rows, device=device)
    inner = 10
    return 2 * rows * cols * inner / best_time(lambda: [torch.mv(w, x, out=y) for _ in range(inner)], repeats)


def make_train_step(model: Transformer, batch: int, seq: int, dtype: torch.dtype = torch.float32, forward=None):
    """A closure running one training step (forward, backward, fused AdamW) on fixed random tokens;
    a ``dtype`` other than fp32 runs forward and loss under autocast; ``forward`` defaults to ``model``."""
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, model.vocab_size, (batch, seq + 1), device=device)
    inputs, targets = x[:, :-1], x[:, 1:]
    forward = model if forward is None else forward  # (a compiled module has no truth value)
    model.train()

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = forward(inputs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def decode_time(model: Transformer, tokens: int, repeats: int) -> float:
    """Seconds per token of batch-1 greedy decoding with the KV cache."""
    model.eval()
    prompt = torch.zeros(1, 1, dtype=torch.long, device=next(model.parameters()).device)
    ranges = [(0, model.vocab_size)] * tokens
    greedy = SamplingConfig(temperature=0.0)
    return best_time(lambda: decode(model, prompt, ranges, greedy), repeats) / tokens


def largest_batch(model: Transformer, seq: int, dtype: torch.dtype, forward, start: int, peaks: dict) -> int:
    """The largest batch (doubling from ``start``) whose training step fits in GPU memory; fills ``peaks``."""
    fits, batch = start, start * 2
    while batch <= 4096:
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            make_train_step(model, batch, seq, dtype, forward)()
            torch.cuda.synchronize()
        except torch.OutOfMemoryError:
            break
        peaks[batch] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        fits, batch = batch, batch * 2
    torch.cuda.empty_cache()
    return fits


def decode_throughput(model: Transformer, batch: int, tokens: int, compiled: bool, repeats: int) -> float:
    """Generated tokens/s (all rows) of ``batch``-row sampling, eager or with the static cache and the
    compiled step (``sampling.compile``; compiled before timing, once per attention span)."""
    model.eval()
    prompt = torch.zeros(batch, 1, dtype=torch.long, device=next(model.parameters()).device)
    ranges = [(0, model.vocab_size)] * tokens
    sampling = SamplingConfig(temperature=1.0, compile=compiled)
    if compiled:
        decode(model, prompt, ranges, sampling)  # compile for this batch size and each attention span it reaches
    return batch * tokens / best_time(lambda: decode(model, prompt, ranges, sampling), repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--norm", default="layernorm", choices=["layernorm", "rmsnorm"])
    p.add_argument("--decode-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables to stderr")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="training autocast dtype (and matmul rate)")
    p.add_argument("--compile", action="store_true", help="time the torch.compile'd model's training step")
    p.add_argument("--find-max-batch", action="store_true", help="on a GPU: double the batch until a training "
                   "step runs out of memory; report the largest that fits and its peak memory")
    p.add_argument("--decode-batches", default="", help="e.g. 1,8,64: sampling throughput at these batch sizes, "
                   "eager and with the static cache + compiled step (sampling.compile)")
    args = p.parse_args()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    mm_size = 8192 if args.device.startswith("cuda") else 2048

    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=args.d_model, n_layer=args.layers, n_head=args.heads, block_size=args.seq,
                            norm=args.norm)
    model = Transformer(cfg, vocab_size=args.vocab).to(args.device)
    n_params = model.num_params()
    flops_per_token = model.flops_per_token(args.seq)
    threads = torch.get_num_threads()

    # Interleave hardware and model measurements so a busy neighbour hits both alike.
    forward = torch.compile(model) if args.compile else None
    train_step = make_train_step(model, args.batch, args.seq, dtype, forward)
    train_step()  # warm-up: allocates the optimizer state (and compiles)
    train_step()
    mm, steps = [], []
    for _ in range(args.repeats):
        mm.append(matmul_flops(mm_size, 3, args.device, dtype))
        steps.append(best_time(train_step, repeats=1, warmup=0))
    train_tokens_s = args.batch * args.seq / min(steps)
    mfu = train_tokens_s * flops_per_token / max(mm)

    # Batch-1 decoding is latency-bound: also try one intra-op thread, which avoids waiting at
    # every op's thread barrier when another process holds a core. The bound is the best matvec rate.
    decode_runs = {}
    for n_threads in sorted({1, threads}) if args.device == "cpu" else [threads]:
        torch.set_num_threads(n_threads)
        mv, tok_s = [], []
        for _ in range(args.repeats):
            mv.append(matvec_flops(n_params, args.d_model, 3, args.device))
            tok_s.append(1 / decode_time(model, args.decode_tokens, repeats=1))
        decode_runs[n_threads] = {"matvec_gflops": round(max(mv) / 1e9, 2), "decode_tokens_per_s": round(max(tok_s), 1),
                                  "bound_tokens_per_s": round(max(mv) / (2 * n_params), 1)}
    torch.set_num_threads(threads)
    best_bound = max(r["bound_tokens_per_s"] for r in decode_runs.values())
    best_decode = max(r["decode_tokens_per_s"] for r in decode_runs.values())

    memory = {}
    if args.device.startswith("cuda"):
        memory["peak_gib_at_batch"] = {args.batch: round(torch.cuda.max_memory_allocated() / 2**30, 2)}
        if args.find_max_batch:
            memory["largest_batch"] = largest_batch(model, args.seq, dtype, forward, args.batch, memory["peak_gib_at_batch"])

    batched = {}
    for b in [int(x) for x in args.decode_batches.split(",") if x]:
        eager = decode_throughput(model, b, args.decode_tokens, False, args.repeats)
        compiled = decode_throughput(model, b, args.decode_tokens, True, args.repeats)
        batched[b] = {"eager_tokens_per_s": round(eager, 1), "compiled_tokens_per_s": round(compiled, 1),
                      "compiled_over_eager": round(compiled / eager, 2)}
        if b == 1:
            batched[b]["compiled_over_bound"] = round(compiled / best_bound, 3)

    if args.profile:
        import sys

        from torch.profiler import ProfilerActivity, profile

        for name, fn in [("train", make_train_step(model, args.batch, args.seq)),
                         ("decode", lambda: decode_time(model, 64, 1))]:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            print(f"--- {name}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)

    print(json.dumps({
        "config": vars(args) | {"params": n_params, "threads": threads,
                                "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
        "matmul_gflops": [round(x / 1e9, 1) for x in mm],
        "train_step_s": [round(x, 3) for x in steps],
        "train_tokens_per_s": round(train_tokens_s, 1),
        "train_model_gflops": round(train_tokens_s * flops_per_token / 1e9, 1),
        "mfu": round(mfu, 3),
        "decode_by_threads": decode_runs,
        "decode_tokens_per_s": best_decode,
        "decode_bound_tokens_per_s": best_bound,
        "decode_ratio": round(best_decode / best_bound, 3),
        "batched_decode": batched,
        "memory": memory,
    }, indent=2))


if __name__ == "__main__":
    main()
