"""SoundStream codec efficiency: training throughput, discriminator share of a step, encode+decode speed.

For each preset (``tiny``, ``small`` by default), on random speech-band noise of the preset's batch size
and segment length:
- ``train_audio_s_per_s``: audio seconds trained per wall second, for the stage's real step
  (``SoundStreamStage.step_objective``: one generator pass, one discriminator pass on real + fake,
  one backward) plus both AdamW steps;
- ``disc_share``: 1 - (step time with the discriminators left out) / (full step time);
- ``rtf``: (encode + decode time) / audio duration, batch 1, eval mode (below 1 = faster than real time).

    python benchmarks/codec.py [--presets tiny small] [--repeats 3] [--threads N] [--device cpu] [--profile]
        [--precision bf16]   # generator and discriminators under bf16 autocast (VQ and losses stay fp32)
        [--compile]          # torch.compile'd encoder, decoder and discriminators (config ``compile``)
        [--architectures seanet vocos]   # time both generators of each preset (docs/codec.md)

Prints one JSON object. Timings are best-of-``repeats`` (the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from timing import best_time

from soundstage.plugins.codec.metrics import bitrate
from soundstage.plugins.codec.presets import preset_config
from soundstage.plugins.codec.stage import SoundStreamStage


def bench_preset(name: str, device: str, repeats: int, rtf_seconds: float, profile: bool, batch_size: int | None,
                 precision: str = "fp32", compile: bool = False, architecture: str = "seanet") -> dict:
    overrides = {"batch_size": batch_size} if batch_size else {}
    overrides["compile"] = compile
    overrides["architecture"] = architecture
    config = preset_config(name, **overrides)
    stage = SoundStreamStage(config).to(device).train()
    (g_opt, d_opt), _ = stage.configure_optimizers()
    samples = stage._whole_frames(config.segment_seconds)
    x = 0.1 * torch.randn(config.batch_size, samples, device=device)
    autocast = lambda: torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")  # noqa: E731

    def step(discriminators: bool = True) -> None:
        g_opt.zero_grad(set_to_none=True)
        d_opt.zero_grad(set_to_none=True)
        with autocast():
            total, _ = stage.step_objective(x, adversarial=True, discriminators=discriminators)
        total.backward()
        g_opt.step()
        if discriminators:
            d_opt.step()

    warmup = 2 if compile else 1  # compiling (forward, backward, each grad mode) happens in the warm-up
    full = best_time(step, repeats, warmup)
    no_disc = best_time(lambda: step(False), repeats, warmup)
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(f"== {name}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)

    stage.eval()
    wave = 0.1 * torch.randn(1, int(rtf_seconds * config.sample_rate), device=device)
    with autocast():
        codes = stage.encode(wave)
        t_enc = best_time(lambda: stage.encode(wave), repeats)
        t_dec = best_time(lambda: stage.decode(codes), repeats)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "batch_size": config.batch_size,
        "segment_seconds": samples / config.sample_rate,
        "generator_params": params(stage.codec),
        "discriminator_params": params(stage.discriminators),
        "step_seconds": round(full, 4),
        "step_seconds_without_discriminators": round(no_disc, 4),
        "train_audio_s_per_s": round(config.batch_size * samples / config.sample_rate / full, 3),
        "disc_share": round(max(0.0, 1 - no_disc / full), 3),
        "rtf": round((t_enc + t_dec) / rtf_seconds, 4),
        "rtf_encode": round(t_enc / rtf_seconds, 4),
        "rtf_decode": round(t_dec / rtf_seconds, 4),
        "bitrate_kbps": round(bitrate(config.num_quantizers, config.codebook_size, stage.frame_rate) / 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="override the presets' batch size")
    parser.add_argument("--rtf-seconds", type=float, default=10.0)
    parser.add_argument("--profile", action="store_true", help="print the top ops of one step to stderr")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--architectures", nargs="+", default=["seanet"], choices=["seanet", "vocos"],
                        help="generators to time per preset (both: also their RTF ratio, measured in this run)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    result = {"device": args.device, "gpu": gpu, "precision": args.precision, "compile": args.compile, "threads": torch.get_num_threads(), "torch": torch.__version__, "presets": {}}
    for name in args.presets:
        for arch in args.architectures:
            key = name if len(args.architectures) == 1 else f"{name}/{arch}"
            result["presets"][key] = bench_preset(name, args.device, args.repeats, args.rtf_seconds, args.profile,
                                                  args.batch_size, args.precision, args.compile, arch)
        if set(args.architectures) == {"seanet", "vocos"}:
            seanet, vocos = result["presets"][f"{name}/seanet"], result["presets"][f"{name}/vocos"]
            result["presets"][f"{name}/rtf_vocos_over_seanet"] = round(vocos["rtf"] / seanet["rtf"], 4)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
