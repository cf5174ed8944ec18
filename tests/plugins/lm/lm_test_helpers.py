"""Small real pieces the LM tests share: tiny stage configs, in-memory token data, a toy codec and
semantic tokenizer that satisfy the encode/decode interfaces of the real plugins, and a per-rank DDP recorder."""
from __future__ import annotations

import json

import lightning as L
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from soundstage.data.token_batch import TokenBatch
from soundstage.plugins.lm.lm_stage import OptimConfig
from soundstage.plugins.lm.stages import CoarseLMConfig, FineLMConfig, SemanticLMConfig
from soundstage.plugins.lm.transformer import TransformerConfig

SEM_VOCAB, CODEBOOK, Q, QC = 8, 8, 3, 2
SEM_RATE, AC_RATE = 10.0, 20.0


def tiny_model(**kw) -> TransformerConfig:
    return TransformerConfig(**{"d_model": 32, "n_layer": 2, "n_head": 2, "block_size": 64} | kw)


def fast_optim() -> OptimConfig:
    return OptimConfig(lr=1e-2, weight_decay=0.0, warmup_steps=5, min_lr_ratio=1.0)


def semantic_config(**kw) -> SemanticLMConfig:
    return SemanticLMConfig(
        **{"model": tiny_model(), "optim": fast_optim(), "semantic_vocab_size": SEM_VOCAB,
           "semantic_rate": SEM_RATE, "window_seconds": 4.0} | kw
    )


def coarse_config(**kw) -> CoarseLMConfig:
    return CoarseLMConfig(
        **{"model": tiny_model(), "optim": fast_optim(), "semantic_vocab_size": SEM_VOCAB, "codebook_size": CODEBOOK,
           "num_coarse_quantizers": QC, "semantic_rate": SEM_RATE, "acoustic_rate": AC_RATE, "window_seconds": 1.0} | kw
    )


def fine_config(**kw) -> FineLMConfig:
    return FineLMConfig(
        **{"model": tiny_model(), "optim": fast_optim(), "codebook_size": CODEBOOK, "num_coarse_quantizers": QC,
           "num_quantizers": Q, "acoustic_rate": AC_RATE, "window_seconds": 0.5} | kw
    )


class TokenSamples(Dataset):
    """Fixed token samples: semantic [Ts] and acoustic [Q, Ta] per item."""

    def __init__(self, semantic: Tensor, acoustic: Tensor, repeat: int = 1) -> None:
        self.semantic, self.acoustic, self.repeat = semantic, acoustic, repeat

    def __len__(self) -> int:
        return len(self.semantic) * self.repeat

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        i %= len(self.semantic)
        return {"semantic": self.semantic[i], "acoustic": self.acoustic[i]}


def collate(items: list[dict[str, Tensor]]) -> TokenBatch:
    """Batch like the TokenDataModule's (``TokenBatch``)."""
    return TokenBatch.of(items)


class InMemoryTokens(L.LightningDataModule):
    """Batches of fixed token samples, standing in for the token-shard datamodule."""

    def __init__(self, semantic: Tensor, acoustic: Tensor, batch_size: int, repeat: int = 1) -> None:
        super().__init__()
        self.data = TokenSamples(semantic, acoustic, repeat)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, collate_fn=collate)


def quick_trainer(max_steps: int, **kw) -> L.Trainer:
    return L.Trainer(
        **{"accelerator": "cpu", "devices": 1, "max_steps": max_steps, "logger": False,
           "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
           "num_sanity_val_steps": 0, "limit_val_batches": 0} | kw
    )


class ToyCodec(nn.Module):
    """A frame-wise RVQ codec: linear projection of each hop, residual nearest-code quantization."""

    def __init__(self, sample_rate: int = 800, hop_length: int = 40, num_quantizers: int = Q, codebook_size: int = CODEBOOK):
        super().__init__()
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.num_quantizers, self.codebook_size = num_quantizers, codebook_size
        self.frame_rate = sample_rate / hop_length
        self.enc = nn.Linear(hop_length, 4)
        self.dec = nn.Linear(4, hop_length)
        self.codebooks = nn.Parameter(torch.randn(num_quantizers, codebook_size, 4))

    def encode(self, wave: Tensor, num_quantizers: int | None = None) -> Tensor:
        B, T = wave.shape
        x = self.enc(wave[:, : T // self.hop_length * self.hop_length].reshape(B, -1, self.hop_length))  # [B, T', 4]
        codes = []
        for cb in self.codebooks[: num_quantizers or self.num_quantizers]:
            idx = torch.cdist(x, cb[None].expand(B, -1, -1)).argmin(-1)  # [B, T']
            codes.append(idx)
            x = x - cb[idx]
        return torch.stack(codes, dim=1)  # [B, Q, T']

    def decode(self, codes: Tensor) -> Tensor:
        z = sum(self.codebooks[q][codes[:, q]] for q in range(codes.shape[1]))  # [B, T', 4]
        return self.dec(z).flatten(1)  # [B, T' * hop]


class ToySemanticTokenizer(nn.Module):
    """Nearest-centroid ids of a linear projection of each frame (k-means style)."""

    def __init__(self, sample_rate: int = 800, hop_length: int = 80, vocab_size: int = SEM_VOCAB):
        super().__init__()
        self.sample_rate, self.hop_length, self.vocab_size = sample_rate, hop_length, vocab_size
        self.frame_rate = sample_rate / hop_length
        self.proj = nn.Linear(hop_length, 4)
        self.centroids = nn.Parameter(torch.randn(vocab_size, 4))

    def encode(self, wave: Tensor) -> Tensor:
        B, T = wave.shape
        x = self.proj(wave[:, : T // self.hop_length * self.hop_length].reshape(B, -1, self.hop_length))
        return torch.cdist(x, self.centroids[None].expand(B, -1, -1)).argmin(-1)  # [B, Ts]


class RecordRanks(L.Callback):
    """On every rank: record the first step's loss and a gathered fingerprint of all weights."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir, self.first_loss = out_dir, None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.first_loss is None:
            self.first_loss = float(outputs["loss"])

    def on_train_end(self, trainer, module):
        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, flat)
        record = {"first_loss": self.first_loss, "max_weight_diff": max(float((g - flat).abs().max()) for g in gathered),
                  "weight_sum": float(flat.double().sum())}
        with open(f"{self.out_dir}/rank{trainer.global_rank}.json", "w") as fh:
            json.dump(record, fh)
