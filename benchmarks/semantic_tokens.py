"""Semantic token quality on held-out voices: MFCC k-means (iteration 0) vs k-means on a HuBERT layer (iteration 1).

Trains the stages briefly on the embedded speech corpus (``prepare_corpus``; espeak-ng voices,
validation = held-out voices) or on the tiny formant-synthesis corpus (``--corpus synthetic``), then
prints phone purity, cluster purity and PNMI as JSON. Iteration 0 is MFCC k-means at the target
rate / vocabulary (HuBERT paper: 50 Hz, K=100); HuBERT learns to predict it; iteration 1 clusters
HuBERT layers at ``--frame-rate`` / ``--vocab-size``. The baseline is MFCC k-means at that same rate
and K, so both tokenizers are scored on equal terms (PNMI grows with K and falls with the rate).

    python benchmarks/semantic_tokens.py --hours 0.05 --kmeans-steps 50 --hubert-steps 200   # smoke size
    python benchmarks/semantic_tokens.py --hours 1 --hubert-steps 2000 --threads 1           # CPU, ~15 min
    python benchmarks/semantic_tokens.py --hours 2 --vocab-size 100 --hubert-steps 20000 --hubert-size base --frontend conv --accelerator gpu
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from soundstage.plugins.semantic.hubert_model import HubertConfig
from soundstage.plugins.semantic.hubert_stage import HubertStage, HubertStageConfig
from soundstage.plugins.semantic.kmeans_stage import KMeansTokenizerConfig, KMeansTokenizerStage
from soundstage.plugins.semantic.labelled_audio import labelled_loader
from soundstage.plugins.semantic.phone_metrics import PhoneClusterCounts, frame_phone_labels
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
def evaluate(tokenizer: KMeansTokenizerStage, val_shards: str, args: argparse.Namespace) -> dict[str, float]:
    """Phone metrics of ``tokenizer`` on the held-out utterances."""
    device = torch.device("cuda" if args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available()) else "cpu")
    tokenizer = tokenizer.to(device).eval()
    counts = PhoneClusterCounts()
    for batch in labelled_loader(val_shards, tokenizer.sample_rate, batch_size=4, max_items=args.val_items):
        ids = tokenizer.encode(batch["audio"].to(device), batch["lengths"].to(device)).cpu()
        for b, phonemes in enumerate(batch["phonemes"]):
            n = int(batch["lengths"][b]) // tokenizer.hop_length
            counts.update(ids[b, :n], frame_phone_labels(phonemes, n, tokenizer.frame_rate))
    return counts.compute()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", choices=["speech", "synthetic"], default="speech")
    p.add_argument("--hours", type=float, default=0.05, help="embedded corpus size (held-out voices are ~10%%)")
    p.add_argument("--cache-dir", default="~/.cache/soundstage/corpora")
    p.add_argument("--vocab-size", type=int, default=256, help="k-means clusters of the scored tokenizers (MFCC baseline, iteration 1)")
    p.add_argument("--frame-rate", type=float, default=25.0, help="token rate in Hz of the scored tokenizers")
    p.add_argument("--target-vocab-size", type=int, default=100, help="clusters of the iteration-0 targets (paper: 100)")
    p.add_argument("--target-frame-rate", type=float, default=50.0, help="rate of the iteration-0 targets (paper: 50 Hz)")
    p.add_argument("--kmeans-steps", type=int, default=100, help="mini-batch k-means updates per tokenizer")
    p.add_argument("--hubert-steps", type=int, default=300)
    p.add_argument("--hubert-size", choices=sorted(HUBERT_SIZES), default="tiny")
    p.add_argument("--frontend", choices=["mel", "conv"], default="mel", help="HuBERT input: log-mel frames or raw-wave convs")
    p.add_argument("--layers", default="", help="comma-separated HuBERT layers clustered for iteration 1 (default: depth // 2)")
    p.add_argument("--warmup-steps", type=int, default=0, help="HuBERT LR warmup (default: hubert_steps // 10)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment-seconds", type=float, default=4.0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--val-items", type=int, default=64, help="held-out utterances scored")
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
    t_data = time.time() - t0

    def ctx(name: str, upstream: dict[str, StageRecord]) -> StageContext:
        return StageContext(name=name, stage_dir=workdir / name, run_dir=workdir, data=DataConfig(),
                            trainer=TrainerConfig(), upstream=upstream, seed=args.seed, train_shards=train, val_shards=val)

    def fit(stage, name: str, upstream: dict[str, StageRecord], steps: int) -> tuple[StageRecord, float]:
        c = ctx(name, upstream)
        start = time.time()
        stage.prepare(c)
        make_trainer(args, steps, c.stage_dir).fit(stage, stage.build_datamodule(c))
        path = stage.save_pretrained(c.stage_dir / "model.safetensors")
        return StageRecord(name, stage.stage_name, c.stage_dir, stage.produces, path), time.time() - start

    def km_config(features: str, vocab: int, rate: float, **kw) -> KMeansTokenizerConfig:
        frames_per_batch = int(args.batch_size * args.segment_seconds * rate)
        return KMeansTokenizerConfig(features=features, vocab_size=vocab, frame_rate=rate, batch_size=args.batch_size,
                                     segment_seconds=args.segment_seconds, batches_per_epoch=None,
                                     init_batches=max(1, -(-2 * vocab // frames_per_batch)), **kw)

    seconds = {"data": round(t_data, 1)}
    km0 = KMeansTokenizerStage(km_config("mfcc", args.target_vocab_size, args.target_frame_rate))
    rec0, seconds["mfcc_targets"] = fit(km0, "km0", {}, args.kmeans_steps)
    targets = evaluate(km0, val, args)
    if (args.target_vocab_size, args.target_frame_rate) == (args.vocab_size, args.frame_rate):
        mfcc = targets
    else:  # the baseline at the scored rate and K
        km_base = KMeansTokenizerStage(km_config("mfcc", args.vocab_size, args.frame_rate))
        _, seconds["mfcc_kmeans"] = fit(km_base, "mfcc", {}, args.kmeans_steps)
        mfcc = evaluate(km_base, val, args)

    hcfg = HubertConfig(frontend=args.frontend, **HUBERT_SIZES[args.hubert_size])
    warmup = args.warmup_steps or max(1, args.hubert_steps // 10)
    hub = HubertStage(HubertStageConfig(model=hcfg, lr=args.lr, warmup_steps=warmup,
                                        batch_size=args.batch_size, segment_seconds=args.segment_seconds, batches_per_epoch=None))
    rec_h, seconds["hubert"] = fit(hub, "hubert", {"km0": rec0}, args.hubert_steps)
    hub_loss = float(hub.trainer.callback_metrics.get("train/loss", float("nan")))
    hub_acc = float(hub.trainer.callback_metrics.get("train/masked_acc", float("nan")))

    layers = [int(x) for x in args.layers.split(",") if x.strip()] or [hcfg.depth // 2]
    iter1 = {}
    for layer in layers:
        km1 = KMeansTokenizerStage(km_config("hubert", args.vocab_size, args.frame_rate, layer=layer))
        _, seconds[f"hubert_kmeans_layer{layer}"] = fit(km1, f"km1_layer{layer}", {"hubert": rec_h}, args.kmeans_steps)
        iter1[f"layer{layer}"] = evaluate(km1, val, args)
    best = max(iter1, key=lambda k: iter1[k]["pnmi"])

    print(json.dumps({
        "benchmark": "semantic_tokens",
        "corpus": args.corpus, "hours": args.hours, "train_shards": train, "val_shards": val,
        "vocab_size": args.vocab_size, "frame_rate": args.frame_rate,
        "target_vocab_size": args.target_vocab_size, "target_frame_rate": args.target_frame_rate,
        "hubert_size": args.hubert_size, "frontend": args.frontend, "layers": layers, "best_layer": int(best[5:]),
        "kmeans_steps": args.kmeans_steps, "hubert_steps": args.hubert_steps, "warmup_steps": warmup, "lr": args.lr,
        "mfcc_targets": targets, "mfcc_kmeans": mfcc, "hubert_iter1": iter1[best], "hubert_iter1_layers": iter1,
        "hubert_train_loss": hub_loss, "hubert_train_masked_acc": hub_acc,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "device": "cuda" if torch.cuda.is_available() and args.accelerator in ("auto", "gpu") else "cpu",
    }, indent=2))


if __name__ == "__main__":
    main()
