"""Where a CPU training step's time goes, for speech_small's codec and coarse LM: the optimizer and precision.

Measured in one process on the recipe's own model sizes (random inputs of the recipe's batch shapes):
- ``codec``: one generator update (forward, backward; fp32 and under bf16 autocast) and the AdamW step
  of its 13M parameters, with torch's per-parameter loop (its CPU default) and the fused kernel the
  stages now use (``soundstage.optim``);
- ``coarse_lm``: a training step (forward, backward, fused AdamW) in fp32 and under bf16 autocast
  (``trainer.precision: bf16-mixed``), next to a 2048^3 matmul in each dtype: CPUs with AMX run bf16
  matmuls several times faster than fp32, CPUs without bf16 instructions (AVX2 only) emulate them
  tens of times slower (what ``trainer.precision: auto`` avoids);
- ``soundstorm``: the same for ``speech_small_soundstorm``'s acoustic stage (d 256 x 4 Conformer blocks,
  400-frame windows of 8 levels), whose depthwise convolutions and per-level heads are not all matmuls;
- ``augment``: CPU milliseconds per training crop of the data workers' degradations (a fresh simulated
  room per crop vs the bank of rooms drawn once), next to the decode.

    python benchmarks/cpu_step.py [--repeats 5] [--threads 2] [--parts codec,coarse_lm,soundstorm,augment]

Prints one JSON object; every ratio compares two paths measured in this run (best of ``repeats``).
"""
from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch
from omegaconf import OmegaConf
from timing import best_time

from soundstage.precision import cpu_has_native_bf16, resolve_precision

from soundstage.data.augment import AugmentConfig, Augmenter
from soundstage.plugins.codec.presets import preset_config
from soundstage.plugins.codec.stage import SoundStreamStage
from soundstage.plugins.lm.transformer import Transformer, TransformerConfig
from soundstage.plugins.soundstorm.configs import SoundStormModelConfig
from soundstage.plugins.soundstorm.model import SoundStormModel
from soundstage.recipe import find_recipe


def codec_step(repeats: int) -> dict:
    recipe = OmegaConf.load(find_recipe("speech_small"))
    config = OmegaConf.to_container(recipe.stages.codec.config)
    config.pop("augment", None)
    stage = SoundStreamStage(preset_config("small", **config)).train()
    params = list(stage.codec.parameters())
    x = 0.1 * torch.randn(stage.config.batch_size, stage._whole_frames(stage.config.segment_seconds))

    def forward_backward(bf16: bool = False) -> None:
        for p in params:
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            total, _ = stage.step_objective(x, adversarial=False, discriminators=False)
        total.backward()

    loop = torch.optim.AdamW(params, lr=1e-5, foreach=False)
    fused = torch.optim.AdamW(params, lr=1e-5, fused=True)
    step = best_time(forward_backward, repeats)
    step_bf16 = best_time(lambda: forward_backward(bf16=True), repeats)
    t_loop, t_fused = best_time(loop.step, repeats), best_time(fused.step, repeats)
    return {"params": sum(p.numel() for p in params), "forward_backward_s": round(step, 4),
            "forward_backward_bf16_s": round(step_bf16, 4), "forward_backward_bf16_over_fp32": round(step / step_bf16, 3),
            "adamw_loop_s": round(t_loop, 4), "adamw_fused_s": round(t_fused, 4),
            "update_fused_over_loop": round((step + t_fused) / (step + t_loop), 3)}


def precision_steps(model: torch.nn.Module, loss_fn, tokens_per_step: int, repeats: int) -> dict:
    """Tokens per second of a training step (``loss_fn()`` forward, backward, fused AdamW) in fp32 and
    under bf16 autocast, next to a 2048^3 matmul in each dtype."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = loss_fn()
            loss.backward()
            opt.step()

        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        out[f"{name}_tokens_per_s"] = round(tokens_per_step / best_time(step, repeats), 1)
        out[f"{name}_matmul_gflops"] = round(2 * 2048**3 / best_time(lambda: a @ b, repeats) / 1e9, 1)
    out["bf16_over_fp32"] = round(out["bf16_tokens_per_s"] / out["fp32_tokens_per_s"], 3)
    return out


def coarse_lm_step(repeats: int, batch: int = 8, seq: int = 832) -> dict:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(d_model=256, n_layer=4, n_head=4, block_size=seq), vocab_size=1300)
    tokens = torch.randint(0, 1300, (batch, seq + 1))

    def loss() -> torch.Tensor:
        logits = model(tokens[:, :-1])
        return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())

    return precision_steps(model, loss, batch * seq, repeats)


def soundstorm_step(repeats: int, batch: int = 8, frames: int = 400, levels: int = 8, codebook: int = 1024) -> dict:
    """speech_small_soundstorm's model on random masked batches (one level per row, half its tokens masked)."""
    torch.manual_seed(0)
    config = SoundStormModelConfig(d_model=256, n_layer=4, n_head=4, conv_kernel=5, dropout=0.1)
    model = SoundStormModel(config, levels, codebook, 256, frames).train()
    codes = torch.randint(0, codebook, (batch, levels, frames))
    semantic = torch.randint(0, 256, (batch, frames))
    level = torch.randint(0, levels, (batch,))
    masked = torch.rand(batch, frames) < 0.5
    inputs = codes.clone()
    for b in range(batch):  # the row's level: masked where drawn; every finer level: masked
        inputs[b, level[b]] = torch.where(masked[b], model.mask_id, inputs[b, level[b]])
        inputs[b, level[b] + 1:] = model.mask_id
    targets = codes[torch.arange(batch), level]  # [B, T]

    def loss() -> torch.Tensor:
        logits = model.logits(model(inputs, semantic), level)
        return torch.nn.functional.cross_entropy(logits[masked].float(), targets[masked])

    return {"params": model.num_params(), **precision_steps(model, loss, batch * frames, repeats)}


def augment_cost(crops: int = 40, seconds: float = 0.5, sample_rate: int = 16000) -> dict:
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * sample_rate))).astype(np.float32)
    out = {}
    for name, bank in (("fresh_room", 0), ("room_bank", AugmentConfig().room_bank)):
        augmenter = Augmenter(AugmentConfig(prob=1.0, room_prob=1.0, room_bank=bank), sample_rate)
        rng = random.Random(0)
        augmenter(wave, rng)  # draws the bank
        t0 = time.process_time()
        for _ in range(crops):
            augmenter(wave, rng)
        out[f"{name}_ms_per_crop"] = round((time.process_time() - t0) / crops * 1000, 2)
    out["room_bank_over_fresh"] = round(out["room_bank_ms_per_crop"] / out["fresh_room_ms_per_crop"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parts", default="codec,coarse_lm,soundstorm,augment", help="comma-separated parts to measure")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = {"codec": lambda: codec_step(args.repeats), "coarse_lm": lambda: coarse_lm_step(args.repeats),
             "soundstorm": lambda: soundstorm_step(args.repeats), "augment": augment_cost}
    chosen = args.parts.split(",")
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {sorted(parts)}")
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__,
           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "native_bf16": cpu_has_native_bf16(),  # what trainer.precision: auto reads
           "precision_auto": resolve_precision("auto", "cpu")}
    out.update({name: parts[name]() for name in chosen})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
