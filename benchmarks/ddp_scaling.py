"""DDP scaling of an LM stage on CPU: tokens/s of ``semantic_lm`` with 1 and 2 processes (gloo).

Weak scaling: every process trains on its own ``--batch-size`` windows per step, so 2 processes
ideally reach 2x the tokens/s of one. The script writes random semantic token shards, then runs
each process count under ``torch.distributed.run --standalone`` with the real ``TokenDataModule``
and ``SemanticLMStage`` in a Lightning Trainer (``strategy=ddp``), and prints one JSON object:

- ``tokens_per_s`` per process count (all ranks together) and ``ratio`` = 2-process / 1-process;
- ``data_share``: the part of a step spent outside ``training_step`` + backward + optimizer, i.e.
  waiting for the next batch (loader + Lightning's loop overhead);
- ``allreduce_share``: time from launching each gradient bucket's all-reduce to its completion,
  summed per step, over the step time (a DDP comm hook times it; it overlaps the backward pass, so it
  is an upper bound of the communication the step waits for).

    python benchmarks/ddp_scaling.py [--procs 1,2] [--steps 30] [--threads 1]

Each process uses ``--threads`` intra-op threads; on a machine with fewer free cores than
processes x threads the ratio measures contention, not the framework.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

VOCAB, RATE = 64, 25.0


def write_token_shards(out: Path, shards: int, per_shard: int, seconds: float, seed: int = 0) -> None:
    """Random semantic ids (``seconds`` long at ``RATE`` Hz) in ``shards`` token shards."""
    from soundstage.data.token_shards import TokenShardWriter

    rng = np.random.default_rng(seed)
    for s in range(shards):
        writer = TokenShardWriter(out, f"s{s}")
        for i in range(per_shard):
            ids = rng.integers(0, VOCAB, int(seconds * RATE))
            meta = {"duration": seconds, "sample_rate": 16000, "semantic_rate": RATE, "semantic_vocab_size": VOCAB}
            writer.write(f"s{s}_{i:04d}", meta, semantic=ids)
        writer.close()


# --- worker (one per rank, started by torch.distributed.run) -----------------------------------
def _timed_allreduce_hook(times: list[float]):
    """A DDP comm hook: the default averaging all-reduce, recording each bucket's latency."""
    import torch
    import torch.distributed as dist

    def hook(state, bucket):
        t0 = time.perf_counter()
        tensor = bucket.buffer().div_(dist.get_world_size())
        fut = dist.all_reduce(tensor, async_op=True).get_future()

        def done(f):
            times.append(time.perf_counter() - t0)
            return f.value()[0]

        return fut.then(done)

    # DDP checks the hook's annotations, which `from __future__ import annotations` turns into strings.
    hook.__annotations__ = {"state": object, "bucket": dist.GradBucket, "return": torch.futures.Future[torch.Tensor]}
    return hook


def _worker(args: argparse.Namespace) -> None:
    import lightning as L
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from soundstage.data.token_datamodule import TokenDataModule
    from soundstage.plugins.lm.stages import SemanticLMConfig, SemanticLMStage
    from soundstage.plugins.lm.transformer import TransformerConfig

    torch.set_num_threads(args.threads)
    total = args.warmup + args.steps

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.step_s: list[float] = []  # training_step + backward + optimizer
            self.wait_s: list[float] = []  # previous step's end -> this step's start (next batch)
            self.allreduce_s: list[float] = []  # per bucket, over the measured steps
            self.tokens = 0
            self.t_begin = self.t_end = self._t = self._last_end = 0.0

        def on_train_start(self, trainer, module) -> None:
            if isinstance(trainer.strategy.model, DistributedDataParallel):
                trainer.strategy.model.register_comm_hook(None, _timed_allreduce_hook(self.allreduce_s))

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            self._t = time.perf_counter()
            if batch_idx == args.warmup:
                self.t_begin = self._t
                self.allreduce_s.clear()
            elif batch_idx > args.warmup:
                self.wait_s.append(self._t - self._last_end)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self._last_end = self.t_end = time.perf_counter()
            if batch_idx >= args.warmup:
                self.step_s.append(self.t_end - self._t)
                self.tokens += int(batch.lengths["semantic"].sum())

    config = SemanticLMConfig(
        semantic_vocab_size=VOCAB, semantic_rate=RATE, window_seconds=args.window_seconds,
        model=TransformerConfig(d_model=args.d_model, n_layer=args.layers, n_head=4, block_size=args.block_size),
        batch_size=args.batch_size, batches_per_epoch=total, preview_seconds=0,
    )
    stage = SemanticLMStage(config)
    dm = TokenDataModule(args.shards, None, args.batch_size, streams=("semantic",), window=stage.window_tokens(config),
                         batches_per_epoch=total, shuffle_buffer=64, seed=0)
    timer = Timer()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = L.Trainer(
        accelerator="cpu", devices=world, strategy="ddp" if world > 1 else "auto", max_steps=total,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer], default_root_dir=args.scratch,
    )
    trainer.fit(stage, datamodule=dm)
    if trainer.is_global_zero:
        wall = timer.t_end - timer.t_begin
        steps = len(timer.step_s)
        step_mean = wall / steps
        result = {
            "procs": world,
            "measured_steps": steps,
            "tokens_per_s": round(timer.tokens * world / wall, 1),  # every rank's windows are full and equal
            "step_ms": round(1000 * step_mean, 2),
            "compute_ms_median": round(1000 * statistics.median(timer.step_s), 2),
            "data_share": round(sum(timer.wait_s) / wall, 4),
            "allreduce_share": round(sum(timer.allreduce_s) / wall, 4) if world > 1 else 0.0,
            "allreduce_ms_per_step": round(1000 * sum(timer.allreduce_s) / steps, 2) if world > 1 else 0.0,
        }
        Path(args.result).write_text(json.dumps(result))


# --- driver ------------------------------------------------------------------------------------
def _run_procs(args: argparse.Namespace, n: int, shards: str, tmp: Path) -> dict[str, Any]:
    result = tmp / f"result-{n}.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n), __file__,
        "--worker", "--shards", shards, "--result", str(result), "--scratch", str(tmp / f"scratch-{n}"),
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
        "--batch-size", str(args.batch_size), "--window-seconds", str(args.window_seconds),
        "--d-model", str(args.d_model), "--layers", str(args.layers), "--block-size", str(args.block_size),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        sys.exit(f"{n} process(es) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(result.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", default="1,2", help="comma-separated process counts")
    p.add_argument("--steps", type=int, default=30, help="measured steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    p.add_argument("--batch-size", type=int, default=8, help="windows per process and step")
    p.add_argument("--window-seconds", type=float, default=4.0, help="4 s at 25 Hz = 100 tokens")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--timeout", type=float, default=600)
    # worker mode (started by torch.distributed.run)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shards", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--scratch", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="ddp_scaling-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_token_shards(tmp / "tokens", shards=8, per_shard=16, seconds=10.0)
        runs = {n: _run_procs(args, n, str(tmp / "tokens"), tmp) for n in map(int, args.procs.split(","))}
    out: dict[str, Any] = {
        "benchmark": "ddp_scaling",
        "stage": "semantic_lm",
        "model": {"d_model": args.d_model, "n_layer": args.layers, "block_size": args.block_size},
        "batch_per_process": args.batch_size,
        "tokens_per_window": int(args.window_seconds * RATE),
        "threads_per_process": args.threads,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
    }
    if 1 in runs and 2 in runs:
        out["ratio"] = round(runs[2]["tokens_per_s"] / runs[1]["tokens_per_s"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
