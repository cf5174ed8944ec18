"""How much of the phones the semantic tokens keep: a phone probe that reads only the semantic ids.

Resynthesis can only say what the semantic ids say. PNMI and phone purity score single ids; the probe
scores what a reader of the whole id sequence recovers: a small CTC recognizer (id embedding ->
the phone recognizer's convolutional encoder -> phones), trained on the ids of the training voices and
scored as phone error rate (PER) on held-out voices, on the same scale as the protocol's PER rows.
When the probe's PER is above the resynthesis target, no acoustic stage can reach that target from
these tokens and the semantic tokenizer is the stage to fix; when it is well below, the acoustic
stages lose what the tokens carry. The trained probe is cached per tokenizer file, training shards
and config, like the measuring models.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from soundstage.checkpoint import build_dir_once
from soundstage.data.utterances import Utterance
from soundstage.fingerprint import file_digest

from .conv_encoder import ConvEncoder
from .eval_models import shards_digest
from .eval_training import LengthBuckets, fit_quietly
from .phone_recognizer import BLANK, greedy_ctc, phone_error_rate, phone_sequence
from .phone_training import CTCModule, phone_inventory

PROBE_VERSION = 1  # bump when the probe or its training change


@dataclass
class TokenProbeConfig:
    """Size and training budget of the phone probe on semantic ids."""

    embed_dim: int = 128
    channels: int = 256
    blocks: int = 6
    kernel: int = 9
    dropout: float = 0.1
    id_dropout: float = 0.1  # share of training ids replaced by a mask id (the probe's SpecAugment)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    batch_seconds: float = 80.0
    max_steps: int = 400  # a fixed number of steps, like the phone recognizer (a measure must not depend on speed)
    max_minutes: float = 30.0  # a guard only
    min_phone_count: int = 3
    seed: int = 0


class TokenPhoneProbe(nn.Module):
    """Semantic ids [B, T] -> per-frame phone log-probabilities [B, F', V] (index 0 the CTC blank).

    Ids are repeated to about 100 Hz, the rate the phone recognizer's encoder reads log-mel at, so the
    probe and the recognizer share an architecture and a CTC output rate (~50 Hz)."""

    def __init__(self, phones: list[str], vocab_size: int, token_rate: float, config: TokenProbeConfig) -> None:
        super().__init__()
        self.phones, self.vocab_size, self.token_rate, self.config = list(phones), int(vocab_size), float(token_rate), config
        self.vocab = [BLANK] + self.phones
        self.repeat = max(1, round(100.0 / token_rate))
        self.embed = nn.Embedding(vocab_size + 1, config.embed_dim)  # the last id is the training mask
        self.encoder = ConvEncoder(config.embed_dim, config.channels, config.blocks, config.kernel, config.dropout)
        self.head = nn.Linear(config.channels, len(self.vocab))

    def forward(self, ids: Tensor) -> Tensor:
        x = self.embed(ids).repeat_interleave(self.repeat, dim=1)  # [B, T * repeat, D]
        return F.log_softmax(self.head(self.encoder(x)), dim=-1)

    def out_frames(self, lengths: Tensor) -> Tensor:
        return ConvEncoder.out_frames(lengths * self.repeat)

    @torch.no_grad()
    def transcribe(self, ids: list[Tensor]) -> list[list[str]]:
        """Greedy CTC phone strings of 1-D id sequences."""
        self.eval()
        device = self.head.weight.device
        return [greedy_ctc(self(x.long().reshape(1, -1).to(device))[0], self.vocab) if x.numel() else [] for x in ids]


def _id_dropout(share: float, mask_id: int) -> Callable[[Tensor, torch.Generator], Tensor]:
    def augment(ids: Tensor, generator: torch.Generator) -> Tensor:
        drop = (torch.rand(ids.shape, generator=generator) < share).to(ids.device)
        return ids.masked_fill(drop, mask_id)
    return augment


@torch.no_grad()
def token_ids(tokenizer: Any, utterances: list[Utterance]) -> list[Tensor]:
    """The tokenizer's ids of each whole utterance, one at a time ([T_i] on CPU)."""
    device = next(tokenizer.parameters(), torch.empty(0)).device
    return [tokenizer.encode(torch.from_numpy(u.wave).float().to(device)[None])[0].long().cpu() for u in utterances]


def train_token_probe(tokenizer: Any, utterances: list[Utterance], config: TokenProbeConfig,
                      log_dir: str | None = None) -> tuple[TokenPhoneProbe, dict[str, Any]]:
    """Train the probe on the ids of ``utterances`` (those with phoneme timings); returns it (eval mode) and facts."""
    labelled = [u for u in utterances if phone_sequence(u.phonemes)]
    if len(labelled) < 4:
        raise ValueError(f"the token probe needs utterances with phoneme timings; found {len(labelled)}")
    torch.manual_seed(config.seed)
    probe = TokenPhoneProbe(phone_inventory(labelled, config.min_phone_count), int(tokenizer.vocab_size),
                            float(tokenizer.frame_rate), config)
    index = {p: i for i, p in enumerate(probe.vocab)}
    ids = token_ids(tokenizer, labelled)
    labels = [torch.tensor([index.get(p, index["<unk>"]) for p in phone_sequence(u.phonemes)]) for u in labelled]
    keep = [i for i in range(len(ids)) if 0 < len(labels[i]) <= int(probe.out_frames(torch.tensor(len(ids[i]))))]

    def collate(batch: list[int]):  # type: ignore[no-untyped-def]
        xs, ys = [ids[keep[i]] for i in batch], [labels[keep[i]] for i in batch]
        padded = pad_sequence(xs, batch_first=True, padding_value=probe.vocab_size)
        return padded, torch.tensor([len(x) for x in xs]), torch.cat(ys), torch.tensor([len(y) for y in ys])

    sampler = LengthBuckets([len(ids[i]) for i in keep], int(config.batch_seconds * probe.token_rate), config.seed)
    loader = DataLoader(list(range(len(keep))), batch_sampler=sampler, collate_fn=collate)
    module = CTCModule(probe, config, _id_dropout(config.id_dropout, probe.vocab_size))
    steps = fit_quietly(module, loader, config.max_steps, config.max_minutes, log_dir)
    return probe.eval(), {"utterances": len(keep), "phones": len(probe.phones), "steps": steps}


def probe_cache_key(tokenizer_file: str | Path, train_shards: list[str], config: TokenProbeConfig, max_utterances: int) -> str:
    payload = {"tokenizer": file_digest(Path(tokenizer_file)), "shards": shards_digest(train_shards), "config": dataclasses.asdict(config),
               "max_utterances": max_utterances, "version": PROBE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def semantic_token_probe(tokenizer: Any, tokenizer_file: str | Path, train_shards: str, held_out: list[Utterance],
                         config: TokenProbeConfig, cache_dir: str | Path, max_utterances: int = 4000,
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """The probe's PER on ``held_out`` (trained once per tokenizer file and corpus, cached), or why there is none."""
    from safetensors.torch import load_file, save_file

    from soundstage.data.shards import expand_shards
    from soundstage.data.utterances import read_utterances

    scored = [u for u in held_out if phone_sequence(u.phonemes)]
    if not scored:
        return {"skipped": "no phoneme timings in the held-out audio"}
    root = Path(os.path.expanduser(str(cache_dir)))
    final = root / f"token-probe-{probe_cache_key(tokenizer_file, expand_shards(train_shards), config, max_utterances)}"

    def train(out: Path) -> None:
        utts = read_utterances(train_shards, int(tokenizer.sample_rate), max_utterances)
        log(f"[eval] training the phone probe on the semantic ids of {len(utts)} training utterances ({config.max_steps} steps)")
        probe, facts = train_token_probe(tokenizer, utts, config, log_dir=str(out / "tb_probe"))
        save_file({k: v.contiguous() for k, v in probe.state_dict().items()}, str(out / "probe.safetensors"))
        (out / "probe.json").write_text(json.dumps({"phones": probe.phones, "facts": facts}, indent=2) + "\n")

    if not (final / "probe.json").is_file():
        build_dir_once(final, "probe.json", train)
    meta = json.loads((final / "probe.json").read_text())
    probe = TokenPhoneProbe(meta["phones"], int(tokenizer.vocab_size), float(tokenizer.frame_rate), config)
    probe.load_state_dict(load_file(str(final / "probe.safetensors")), strict=True)
    hyps = probe.transcribe(token_ids(tokenizer, scored))
    per = phone_error_rate(hyps, [phone_sequence(u.phonemes) for u in scored])
    return {"per": per, "utterances": len(scored), "training": meta["facts"], "cache_dir": str(final)}
