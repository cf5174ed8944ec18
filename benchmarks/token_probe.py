"""How much of the phones a tokenizer's ids keep: the evaluation's phone probe on any tokenizer file(s).

Trains ``soundstage eval``'s CTC probe (``plugins/audiolm/evaluation/token_probe.py``) on the ids of the
embedded speech corpus' training voices and prints, per file, its phone error rate on up to 200
held-out utterances as JSON lines. A file is a semantic tokenizer's exported model (any stage with
``encode(wave) -> ids``), or a codec's, whose first RVQ level is probed (acoustic tokens, for comparison).
Compare tokenizer settings here before spending a whole run on them (docs/training_guide.md).

    python benchmarks/token_probe.py runs/speech_small/semantic/model.safetensors runs/speech_small/codec/model.safetensors
    python benchmarks/token_probe.py A.safetensors B.safetensors --hours 2 --steps 400 --threads 2
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import Tensor, nn

from soundstage.data.corpus import prepare_corpus
from soundstage.data.utterances import read_utterances
from soundstage.plugins.audiolm.evaluation.phone_recognizer import phone_error_rate, phone_sequence
from soundstage.plugins.audiolm.evaluation.token_probe import TokenProbeConfig, token_ids, train_token_probe
from soundstage.recipe_schema import DataConfig
from soundstage.stage import Stage


class CodecFirstLevel(nn.Module):
    """A codec seen as a tokenizer of its first RVQ level's ids."""

    def __init__(self, codec: Stage) -> None:
        super().__init__()
        self.codec = codec
        self.sample_rate, self.frame_rate = codec.sample_rate, codec.frame_rate
        self.vocab_size = codec.config.codebook_size

    def encode(self, wave: Tensor) -> Tensor:
        return self.codec.encode(wave, num_quantizers=1)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="exported tokenizer or codec models (.safetensors)")
    parser.add_argument("--hours", type=float, default=2.0, help="size of the embedded speech corpus (speech_small: 2)")
    parser.add_argument("--engine", default="espeak")
    parser.add_argument("--steps", type=int, default=TokenProbeConfig.max_steps)
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpora: dict[int, tuple[list, list]] = {}  # sample rate -> (training, held-out utterances), read once
    for file in args.files:
        model = Stage.load_pretrained(file).eval()
        tokenizer = model if hasattr(model, "vocab_size") else CodecFirstLevel(model)  # semantic tokenizers have one
        sr = int(tokenizer.sample_rate)
        if sr not in corpora:
            train_shards, val_shards = prepare_corpus(DataConfig(sample_rate=sr, corpus="speech", engine=args.engine,
                                                                 hours=args.hours, val_fraction=0.15))
            corpora[sr] = (read_utterances(train_shards, sr, 4000),
                           [u for u in read_utterances(val_shards, sr, args.held_out) if phone_sequence(u.phonemes)])
        train, held_out = corpora[sr]
        start = time.time()
        probe, facts = train_token_probe(tokenizer, train, TokenProbeConfig(max_steps=args.steps))
        per = phone_error_rate(probe.transcribe(token_ids(tokenizer, held_out)), [phone_sequence(u.phonemes) for u in held_out])
        print(json.dumps({"file": file, "ids": "codec level 0" if tokenizer is not model else "semantic",
                          "vocab_size": int(tokenizer.vocab_size), "frame_rate": float(tokenizer.frame_rate), **facts,
                          "held_out_utterances": len(held_out), "probe_per": round(per, 4),
                          "seconds": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main()
