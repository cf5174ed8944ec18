"""Semantic token quality on held-out voices: MFCC k-means vs k-means on the layers of HuBERT iterations.

Trains the stages briefly on the embedded speech corpus (``prepare_corpus``; espeak-ng voices,
validation = held-out voices) or on the tiny formant-synthesis corpus (``--corpus synthetic``), then
prints phone purity, cluster purity and PNMI as JSON. Iteration 1's targets are MFCC k-means at the
target rate / vocabulary (HuBERT paper: 50 Hz, K=100); iteration n > 1 predicts k-means of iteration
n-1's selected layer (``--iterations``). Each iteration's layers are clustered at ``--frame-rate`` /
``--vocab-size``, the same rate and K as the MFCC baseline (PNMI grows with K and falls with the rate).

Honest scoring: the held-out voices are split in two halves; the layer is picked on the first and
every reported number (HuBERT and MFCC alike) comes from the second, with a paired bootstrap over
its utterances for each difference. ``--untrained-control`` also scores the same network before
training, which separates what the architecture gives (80 log-mel bins + local convolutions) from
what the masked prediction training adds.

    python benchmarks/semantic_tokens.py --hours 0.05 --kmeans-steps 50 --hubert-steps 200   # smoke size
    python benchmarks/semantic_tokens.py --hours 2 --iterations 2 --hubert-steps 3000 --mask-span 5 --lr 1e-3 \
        --warmup-steps 200 --kmeans-steps 400 --layers 0,1,2,3,4 --untrained-control --threads 1   # one CPU core
    python benchmarks/semantic_tokens.py --hours 2 --vocab-size 100 --hubert-steps 20000 --hubert-size base --frontend conv --accelerator gpu
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from soundstage.plugins.semantic.hubert_model import HubertConfig
from soundstage.plugins.semantic.hubert_stage import HubertStage, HubertStageConfig
from soundstage.plugins.semantic.kmeans_stage import (
    KMeansTokenizerConfig,
    KMeansTokenizerStage,
)
from soundstage.plugins.semantic.labelled_audio import labelled_loader
from soundstage.plugins.semantic.phone_metrics import (
    PhoneClusterCounts,
    bootstrap_difference,
    frame_phone_labels,
    merged,
)
from soundstage.recipe_schema import DataConfig
from soundstage.stage import StageContext, StageRecord
from soundstage.trainer import TrainerConfig

HUBERT_SIZES = {
    "tiny": dict(conv_dim=128, conv_kernels=[10, 4, 4, 4], conv_strides=[5, 4, 4, 4], dim=128, depth=4, heads=4,
                 mlp_ratio=4.0, dropout=0.0, pos_conv_kernel=16, pos_conv_groups=8),
    "small": dict(conv_dim=256, conv_kernels=[10, 3, 3, 3, 3, 2, 2], conv_strides=[5, 2, 2, 2, 2, 2, 2], dim=384,
                  depth=6, heads=6, mlp_ratio=4.0, dropout=0.05, pos_conv_kernel=64, pos_conv_groups=16),
    "base": {},  # HubertConfig defaults: HuBERT Base
}


def get_shards(args: argparse.Namespace, workdir: Path) -> tuple[str, str]:
    if args.corpus == "speech":
        from soundstage.data.corpus import prepare_corpus

        return prepare_corpus(DataConfig(corpus="speech", hours=args.hours, corpus_seed=args.seed, cache_dir=args.cache_dir))
    from soundstage.data.shard_writer import AudioShardWriter
    from soundstage.plugins.semantic.synthetic import synthetic_corpus

    n = max(4, int(args.hours * 3600 / 4))  # 4 s utterances
    patterns = []
    for split, count, seed, pitches in (("train", n, 0, (90.0, 180.0)), ("val", max(2, n // 10), 1, (190.0, 240.0))):
        writer = AudioShardWriter(workdir / "corpus" / split, 16000)
        for i, (wave, phones) in enumerate(synthetic_corpus(count, seconds=4.0, seed=seed, pitches=pitches)):
            writer.write(f"{split}{i:05d}", wave.numpy(), {"phonemes": phones})
        patterns.append(str(workdir / "corpus" / split / writer.close()["pattern"]))
    return patterns[0], patterns[1]


def make_trainer(args: argparse.Namespace, max_steps: int, stage_dir: Path) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps, max_epochs=10_000, accelerator=args.accelerator, devices=1, precision=args.precision,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=str(stage_dir),
    )


@torch.no_grad()
def evaluate(tokenizer: KMeansTokenizerStage, val_shards: str, args: argparse.Namespace) -> list[tuple[str, PhoneClusterCounts]]:
    """Per-utterance (key, phone/token counts) of ``tokenizer`` on the held-out utterances."""
    device = torch.device("cuda" if args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available()) else "cpu")
    tokenizer = tokenizer.to(device).eval()
    out = []
    for batch in labelled_loader(val_shards, tokenizer.sample_rate, batch_size=4, max_items=args.val_items):
        ids = tokenizer.encode(batch["audio"].to(device), batch["lengths"].to(device)).cpu()
        for b, phonemes in enumerate(batch["phonemes"]):
            n = int(batch["lengths"][b]) // tokenizer.hop_length
            counts = PhoneClusterCounts()
            counts.update(ids[b, :n], frame_phone_labels(phonemes, n, tokenizer.frame_rate))
            out.append((batch["key"][b], counts))
    return out


def speaker(key: str) -> str:
    """The voice of a speech-corpus key (``val_0000012_en-us_f3``); other keys are their own group."""
    parts = key.split("_", 2)
    return parts[2] if len(parts) == 3 else key


def split_halves(keys: list[str]) -> tuple[list[int], list[int]]:
    """Utterance indices of two disjoint halves of the held-out voices: (select, report).

    A layer is picked on the first half and scored on the second, so the reported number is not
    the maximum of several noisy scores on the same data.
    """
    voices = sorted({speaker(k) for k in keys})
    select_voices = set(voices[0::2])
    select = [i for i, k in enumerate(keys) if speaker(k) in select_voices]
    report = [i for i, k in enumerate(keys) if speaker(k) not in select_voices]
    return select, report


def score(utts: list[tuple[str, PhoneClusterCounts]], idx: list[int] | None = None) -> dict[str, float]:
    picked = utts if idx is None else [utts[i] for i in idx]
    return merged(c for _, c in picked).compute()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", choices=["speech", "synthetic"], default="speech")
    p.add_argument("--hours", type=float, default=0.05, help="embedded corpus size (held-out voices are ~10%%)")
    p.add_argument("--cache-dir", default="~/.cache/soundstage/corpora")
    p.add_argument("--vocab-size", type=int, default=256, help="k-means clusters of the scored tokenizers (MFCC baseline, each iteration)")
    p.add_argument("--frame-rate", type=float, default=25.0, help="token rate in Hz of the scored tokenizers")
    p.add_argument("--target-vocab-size", type=int, default=100, help="clusters of each iteration's targets (paper: 100, then 500)")
    p.add_argument("--target-frame-rate", type=float, default=50.0, help="rate of each iteration's targets (paper: 50 Hz)")
    p.add_argument("--utterance-norm", choices=["none", "mean", "meanvar"], default="none",
                   help="per-utterance feature normalisation before every k-means (MFCC and HuBERT alike)")
    p.add_argument("--kmeans-steps", type=int, default=100, help="mini-batch k-means updates per tokenizer")
    p.add_argument("--iterations", type=int, default=1, help="HuBERT iterations; iteration n > 1 predicts k-means of iteration n-1's selected layer")
    p.add_argument("--hubert-steps", type=int, default=300, help="training steps of each HuBERT iteration")
    p.add_argument("--hubert-size", choices=sorted(HUBERT_SIZES), default="tiny")
    p.add_argument("--frontend", choices=["mel", "conv"], default="mel", help="HuBERT input: log-mel frames or raw-wave convs")
    p.add_argument("--layers", default="", help="comma-separated HuBERT layers clustered and scored (default: depth // 2)")
    p.add_argument("--warmup-steps", type=int, default=0, help="HuBERT LR warmup (default: hubert_steps // 10)")
    p.add_argument("--mask-prob", type=float, default=None, help="HuBERT span-start probability (default: the stage's)")
    p.add_argument("--mask-span", type=int, default=None, help="HuBERT mask span in frames (default: the stage's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment-seconds", type=float, default=4.0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--val-items", type=int, default=None, help="held-out utterances scored (default: all)")
    p.add_argument("--untrained-control", action="store_true", help="also score k-means on an untrained HuBERT (the architecture alone)")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples of the report half")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="keep stage exports here (default: a temp dir)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="semantic-bench-"))
    t0 = time.time()
    train, val = get_shards(args, workdir)
    seconds = {"data": time.time() - t0}

    def ctx(name: str, upstream: dict[str, StageRecord]) -> StageContext:
        return StageContext(name=name, stage_dir=workdir / name, run_dir=workdir, data=DataConfig(),
                            trainer=TrainerConfig(), upstream=upstream, seed=args.seed, train_shards=train, val_shards=val)

    def fit(stage, name: str, upstream: dict[str, StageRecord], steps: int) -> StageRecord:
        c = ctx(name, upstream)
        start = time.time()
        stage.prepare(c)
        if steps > 0:
            make_trainer(args, steps, c.stage_dir).fit(stage, stage.build_datamodule(c))
        path = stage.save_pretrained(c.stage_dir / "model.safetensors")
        seconds[name] = time.time() - start
        return StageRecord(name, stage.stage_name, c.stage_dir, stage.produces, path)

    def km_config(features: str, vocab: int, rate: float, **kw) -> KMeansTokenizerConfig:
        frames_per_batch = int(args.batch_size * args.segment_seconds * rate)
        return KMeansTokenizerConfig(features=features, vocab_size=vocab, frame_rate=rate, batch_size=args.batch_size,
                                     segment_seconds=args.segment_seconds, batches_per_epoch=None,
                                     init_batches=max(1, -(-2 * vocab // frames_per_batch)),
                                     utterance_norm=args.utterance_norm, **kw)

    def scored(stage: KMeansTokenizerStage, name: str) -> list[tuple[str, PhoneClusterCounts]]:
        start = time.time()
        utts = evaluate(stage, val, args)
        seconds[f"eval_{name}"] = time.time() - start
        return utts

    km0 = KMeansTokenizerStage(km_config("mfcc", args.target_vocab_size, args.target_frame_rate))
    teacher = fit(km0, "mfcc_targets", {}, args.kmeans_steps)
    target_scores = {"mfcc_targets": score(scored(km0, "mfcc_targets"))}
    km_base = KMeansTokenizerStage(km_config("mfcc", args.vocab_size, args.frame_rate))
    fit(km_base, "mfcc_kmeans", {}, args.kmeans_steps)
    base = scored(km_base, "mfcc_kmeans")
    keys = [k for k, _ in base]
    select, report = split_halves(keys)

    hcfg = HubertConfig(frontend=args.frontend, **HUBERT_SIZES[args.hubert_size])
    warmup = args.warmup_steps or max(1, args.hubert_steps // 10)
    mask = {k: v for k, v in (("mask_start_prob", args.mask_prob), ("mask_span", args.mask_span)) if v is not None}
    layers = [int(x) for x in args.layers.split(",") if x.strip()] or [hcfg.depth // 2]
    def layer_scores(rec: StageRecord, prefix: str) -> dict[int, list[tuple[str, PhoneClusterCounts]]]:
        per_layer = {}
        for layer in layers:
            km = KMeansTokenizerStage(km_config("hubert", args.vocab_size, args.frame_rate, layer=layer))
            fit(km, f"{prefix}_kmeans_layer{layer}", {"hubert": rec}, args.kmeans_steps)
            per_layer[layer] = scored(km, f"{prefix}_layer{layer}")
            assert [k for k, _ in per_layer[layer]] == keys
        return per_layer

    def summary(per_layer: dict[int, list[tuple[str, PhoneClusterCounts]]]) -> dict:
        """Pick the layer on the select half; score it on the report half against MFCC (paired bootstrap)."""
        best = max(layers, key=lambda layer: score(per_layer[layer], select)["pnmi"])
        picked = [per_layer[best][i][1] for i in report]
        versus = {"minus_untrained_report_half": bootstrap_difference(control_utts, picked, args.bootstrap, args.seed)} if control_utts else {}
        return {
            "selected_layer": best,
            "report_half": score(per_layer[best], report),
            "minus_mfcc_report_half": bootstrap_difference([base[i][1] for i in report], picked, args.bootstrap, args.seed),
            **versus,
            "layers_all_voices": {f"layer{layer}": score(u) for layer, u in per_layer.items()},
            "layers_select_half_pnmi": {f"layer{layer}": score(u, select)["pnmi"] for layer, u in per_layer.items()},
        }

    def hubert_stage() -> HubertStage:
        return HubertStage(HubertStageConfig(model=dataclasses.replace(hcfg), lr=args.lr, warmup_steps=warmup, **mask,
                                             batch_size=args.batch_size, segment_seconds=args.segment_seconds, batches_per_epoch=None))

    control, control_utts = {}, []
    if args.untrained_control:  # the same architecture before any training: what the network alone gives
        rec = fit(hubert_stage(), "hubert0_untrained", {"targets": teacher}, 0)
        per_layer = layer_scores(rec, "hubert0_untrained")
        control = {"untrained_control": summary(per_layer)}
        control_utts = [per_layer[control["untrained_control"]["selected_layer"]][i][1] for i in report]
        print(json.dumps(control), flush=True)

    iterations = {}
    for it in range(1, args.iterations + 1):
        hub = hubert_stage()
        rec = fit(hub, f"hubert{it}", {"targets": teacher}, args.hubert_steps)
        metrics = hub.trainer.callback_metrics
        per_layer = layer_scores(rec, f"hubert{it}")
        iterations[f"iter{it}"] = summary(per_layer)
        iterations[f"iter{it}"].update({
            "train_loss": float(metrics.get("train/loss", float("nan"))),
            "train_masked_acc": float(metrics.get("train/masked_acc", float("nan"))),
        })
        best = iterations[f"iter{it}"]["selected_layer"]
        print(json.dumps({f"iter{it}": iterations[f"iter{it}"]}), flush=True)  # progress for long runs
        if it < args.iterations:  # the next iteration's targets: k-means of this iteration's selected layer
            km_t = KMeansTokenizerStage(km_config("hubert", args.target_vocab_size, args.target_frame_rate, layer=best))
            teacher = fit(km_t, f"hubert{it}_targets", {"hubert": rec}, args.kmeans_steps)
            target_scores[f"hubert{it}_targets"] = score(scored(km_t, f"hubert{it}_targets"))

    print(json.dumps({
        "benchmark": "semantic_tokens",
        "corpus": args.corpus, "hours": args.hours, "train_shards": train, "val_shards": val,
        "vocab_size": args.vocab_size, "frame_rate": args.frame_rate,
        "target_vocab_size": args.target_vocab_size, "target_frame_rate": args.target_frame_rate,
        "hubert_size": args.hubert_size, "frontend": args.frontend, "layers": layers, "iterations": args.iterations,
        "kmeans_steps": args.kmeans_steps, "utterance_norm": args.utterance_norm, "hubert_steps": args.hubert_steps, "warmup_steps": warmup, "lr": args.lr,
        "mask": mask or "stage defaults", "threads": args.threads,
        "held_out": {"utterances": len(keys), "voices": len({speaker(k) for k in keys}),
                     "select_half_utterances": len(select), "report_half_utterances": len(report)},
        "targets_all_voices": target_scores,
        "mfcc_kmeans_all_voices": score(base),
        "mfcc_kmeans_report_half": score(base, report),
        **control,
        **iterations,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "total_seconds": round(time.time() - t0, 1),
        "device": "cuda" if torch.cuda.is_available() and args.accelerator in ("auto", "gpu") else "cpu",
    }, indent=2))


if __name__ == "__main__":
    main()
