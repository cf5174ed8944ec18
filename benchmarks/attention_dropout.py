"""Training-step time of the LM with and without dropout on the attention probabilities (CPU, one thread).

    python benchmarks/attention_dropout.py [--d-model 256 --n-layer 4 --seq 700 --batch 8 --vocab 3300]

Prints one JSON object: the fastest step of each setting over interleaved repeats and their ratio
(``TransformerConfig.attention_dropout > 0`` makes PyTorch's CPU attention take its unfused path).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from soundstage.plugins.lm.transformer import Transformer, TransformerConfig


def step_time(cfg: TransformerConfig, vocab: int, batch: int, seq: int, steps: int = 3) -> float:
    torch.manual_seed(0)
    model = Transformer(cfg, vocab)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(0, vocab, (batch, seq))
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x).flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return min(times[1:])  # the first step warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--seq", type=int, default=700)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=3300)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = dict(d_model=args.d_model, n_layer=args.n_layer, n_head=args.n_head, block_size=args.seq, dropout=0.1)
    best: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved, so a busy neighbour hits both settings
        for name, p in (("attention_dropout_0", 0.0), ("attention_dropout_0.1", 0.1)):
            t = step_time(TransformerConfig(**base, attention_dropout=p), args.vocab, args.batch, args.seq)
            best[name] = min(best.get(name, t), t)
    print(json.dumps({"step_seconds": best, "ratio": best["attention_dropout_0.1"] / best["attention_dropout_0"],
                      "config": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
