"""SoundStorm's network (Borsos et al. 2023): a bidirectional Conformer over codec frames.

The input of a frame is the sum of the embeddings of its RVQ codes (one table per level, each with
a MASK entry) and of the semantic id aligned to that frame, so the sequence is as long as the
number of frames whatever the number of levels. One output head per level predicts that level's
codes. Attention, feed-forward layers and rotary positions are the LM transformer's own modules.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from soundstage.plugins.lm.transformer import (MLP, Block, CausalSelfAttention, RotaryEmbedding, TransformerConfig,
                                               gpt2_init, make_dropout, make_norm)

from .configs import SoundStormModelConfig  # noqa: F401  (re-exported)



class ConvModule(nn.Module):
    """Conformer convolution module: pointwise conv + GLU, depthwise conv, norm, SiLU, pointwise conv.

    The norm is a LayerNorm over channels instead of the Conformer's BatchNorm: batch statistics would
    depend on padding and differ between DDP ranks and between training and one-utterance decoding.
    """

    def __init__(self, config: TransformerConfig, kernel: int) -> None:
        super().__init__()
        d = config.d_model
        self.norm_in = make_norm(config)
        self.pointwise_in = nn.Linear(d, 2 * d, bias=config.bias)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d, bias=config.bias)
        self.norm_mid = make_norm(config)
        self.proj = nn.Linear(d, d, bias=config.bias)  # "proj": scaled at init like every residual projection
        self.dropout = make_dropout(config.dropout)

    def forward(self, x: Tensor, frames: Tensor | None) -> Tensor:
        """x [B, T, C]; ``frames`` [B, T] bool marks real frames (None: all are)."""
        h = F.glu(self.pointwise_in(self.norm_in(x)), dim=-1)  # [B, T, C]
        if frames is not None:
            h = h.masked_fill(~frames[..., None], 0.0)  # padding must not leak into real frames
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)  # [B, T, C]
        return self.dropout(self.proj(F.silu(self.norm_mid(h))))


class ConformerBlock(nn.Module):
    """Macaron Conformer block: x + FF/2, + self-attention, + convolution, + FF/2, then a norm."""

    def __init__(self, config: TransformerConfig, kernel: int) -> None:
        super().__init__()
        self.norm_ff1, self.ff1 = make_norm(config), MLP(config)
        self.norm_attn, self.attn = make_norm(config), CausalSelfAttention(config)  # used with is_causal=False
        self.conv = ConvModule(config, kernel)
        self.norm_ff2, self.ff2 = make_norm(config), MLP(config)
        self.norm_out = make_norm(config)

    def forward(self, x: Tensor, rope: RotaryEmbedding, attn_mask: Tensor | None, frames: Tensor | None) -> Tensor:
        x = x + 0.5 * self.ff1(self.norm_ff1(x))
        x = x + self.attn(self.norm_attn(x), rope, attn_mask, False, 0, None, 0)
        x = x + self.conv(x, frames)
        x = x + 0.5 * self.ff2(self.norm_ff2(x))
        return self.norm_out(x)


class TransformerBlock(nn.Module):
    """The LM's pre-norm block, attending both ways (the ``model.block: transformer`` switch)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.block = Block(config)

    def forward(self, x: Tensor, rope: RotaryEmbedding, attn_mask: Tensor | None, frames: Tensor | None) -> Tensor:
        return self.block(x, rope, attn_mask, False, 0, None, 0)


class SoundStormModel(nn.Module):
    """Codes [B, Q, T] (``mask_id`` where hidden) + semantic ids [B, T] at the frame rate -> hidden [B, T, C];
    ``logits(hidden, level)`` -> [B, T, K] for one level (an int, or one level per row [B])."""

    def __init__(self, config: SoundStormModelConfig, num_quantizers: int, codebook_size: int, semantic_vocab_size: int,
                 max_frames: int) -> None:
        super().__init__()
        self.config, self.max_frames = config, max_frames
        self.num_quantizers, self.codebook_size = num_quantizers, codebook_size
        self.mask_id = codebook_size  # each level's table has one extra row: MASK
        tc = config.transformer_config(max_frames)
        d = config.d_model
        # Q tables of K + 1 rows stored as one: level q's code c is row q * (K + 1) + c.
        self.code_embed = nn.Embedding(num_quantizers * (codebook_size + 1), d)
        self.register_buffer("level_offsets", torch.arange(num_quantizers)[:, None] * (codebook_size + 1), persistent=False)
        self.semantic_embed = nn.Embedding(semantic_vocab_size, d)
        self.drop = make_dropout(config.dropout)
        if config.block == "conformer":
            self.blocks = nn.ModuleList(ConformerBlock(tc, config.conv_kernel) for _ in range(config.n_layer))
        else:
            self.blocks = nn.ModuleList(TransformerBlock(tc) for _ in range(config.n_layer))
        self.norm = make_norm(tc)
        self.rope = RotaryEmbedding(d // config.n_head, max_frames, config.rope_base)
        self.heads = nn.Parameter(torch.empty(num_quantizers, codebook_size, d))  # one output layer per level
        gpt2_init(self, config.n_layer)
        nn.init.normal_(self.heads, mean=0.0, std=0.02)

    def forward(self, codes: Tensor, semantic: Tensor, frames: Tensor | None = None) -> Tensor:
        """Hidden states [B, T, C]; ``frames`` [B, T] bool marks real (unpadded) frames, None: all."""
        B, Q, T = codes.shape
        if T > self.max_frames:
            raise ValueError(f"{T} frames exceed the model's window of {self.max_frames}")
        x = self.code_embed(codes + self.level_offsets).sum(dim=1)  # [B, Q, T, C] -> [B, T, C]
        x = self.drop(x + self.semantic_embed(semantic))
        # Padded keys are hidden from every query; None keeps SDPA on its fastest kernel.
        attn_mask = None if frames is None else frames[:, None, None, :]  # [B, 1, 1, T]
        checkpointing = self.config.activation_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if checkpointing:
                x = checkpoint(block, x, self.rope, attn_mask, frames, use_reentrant=False)
            else:
                x = block(x, self.rope, attn_mask, frames)
        return self.norm(x)

    def logits(self, hidden: Tensor, level: int | Tensor) -> Tensor:
        """Logits [B, T, K] of RVQ level ``level`` (int: every row; LongTensor [B]: one level per row)."""
        if isinstance(level, int):
            return hidden @ self.heads[level].T
        return torch.bmm(hidden, self.heads[level].transpose(1, 2))  # [B, T, C] x [B, C, K]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
