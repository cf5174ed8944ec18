"""The decoder-only transformer shared by the semantic, coarse and fine LMs (nanoGPT/litgpt style).

Pre-norm blocks (RMSNorm or LayerNorm), a fused QKV projection, ``scaled_dot_product_attention``
(flash kernels on GPU and CPU), rotary position embeddings by default or the T5-style relative
position bias AudioLM used, weight tying, optional activation checkpointing and a KV cache.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .configs import TransformerConfig  # noqa: F401  (re-exported)
from .kv_cache import KVCache


def make_norm(config: TransformerConfig) -> nn.Module:
    """The configured pre-norm layer."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=1e-5)
    if config.norm == "layernorm":
        return nn.LayerNorm(config.d_model, bias=config.bias)
    raise ValueError(f"model.norm must be 'rmsnorm' or 'layernorm', got {config.norm!r}")


def make_dropout(p: float) -> nn.Module:
    # nn.Dropout(0.0) still runs a kernel in training mode; skip it entirely
    return nn.Dropout(p) if p > 0 else nn.Identity()


class RotaryEmbedding(nn.Module):
    """Rotary position embedding on interleaved pairs, as one complex multiply (fast forward and backward)."""

    def __init__(self, head_dim: int, block_size: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)  # [block, D/2]
        self.register_buffer("cis", torch.polar(torch.ones_like(angles), angles)[:, None], persistent=False)
        self.register_buffer("cos", angles.cos()[:, None], persistent=False)  # the same, real (static decoding)
        self.register_buffer("sin", angles.sin()[:, None], persistent=False)

    def forward(self, x: Tensor, pos: int | Tensor) -> Tensor:
        """Rotate x [B, T, H, D] (last dim contiguous) for positions pos..pos+T."""
        T = x.shape[1]
        if isinstance(pos, Tensor) or torch.compiler.is_compiling():  # inductor generates no complex code
            return self._rotate_real(x, pos)
        xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # [B, T, H, D/2], no copy in fp32
        return torch.view_as_real(xc * self.cis[pos : pos + T]).flatten(-2).type_as(x)

    def _rotate_real(self, x: Tensor, pos: int | Tensor) -> Tensor:
        """The same rotation in real arithmetic (under torch.compile, which generates code for real ops,
        not complex ones: static decoding and compiled training)."""
        at = pos + torch.arange(x.shape[1], device=x.device)
        cos, sin = self.cos.index_select(0, at), self.sin.index_select(0, at)  # [T, 1, D/2]
        even, odd = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # [B, T, H, D/2] each
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).type_as(x)


class RelativePositionBias(nn.Module):
    """T5's bucketed relative position bias for causal attention: one learned scalar per head and bucket."""

    def __init__(self, n_head: int, num_buckets: int, max_distance: int) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, n_head)

    def _bucket(self, distance: Tensor) -> Tensor:
        # Half the buckets are exact small distances, the rest grow logarithmically up to max_distance.
        exact = self.num_buckets // 2
        large = exact + (
            torch.log(distance.float().clamp(min=1) / exact)
            / math.log(self.max_distance / exact)
            * (self.num_buckets - exact)
        ).long()
        large = large.clamp(max=self.num_buckets - 1)
        return torch.where(distance < exact, distance, large)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """Additive attention mask [1, H, Tq, Tk] with the bias and -inf on future keys."""
        distance = q_pos[:, None] - k_pos[None, :]  # [Tq, Tk], >= 0 for visible keys
        bias = self.embedding(self._bucket(distance.clamp(min=0))).permute(2, 0, 1)  # [H, Tq, Tk]
        return bias.masked_fill(distance < 0, float("-inf"))[None]


def _init_linear_embedding(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def gpt2_init(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by depth."""
    model.apply(_init_linear_embedding)
    for name, p in model.named_parameters():
        if name.endswith("proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused QKV projection."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.d_model // config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.dropout = config.attention_dropout
        self.resid_dropout = make_dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        rope: RotaryEmbedding | None,
        mask: Tensor | None,
        is_causal: bool,
        pos: int | Tensor,
        cache: KVCache | None,
        layer: int,
    ) -> Tensor:
        B, T, C = x.shape
        # unbind (not slicing) so backward stacks the three grads instead of zero-filling and copying
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).unbind(2)  # 3 x [B, T, H, D]
        if rope is not None:
            q, k = rope(q, pos), rope(k, pos)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, D]
        if cache is not None:
            k, v = cache.update(layer, pos, k, v)  # [B, H, pos+T, D]
            if isinstance(pos, Tensor) and mask is not None and mask.shape[-1] < k.shape[2]:
                k, v = k[:, :, : mask.shape[-1]], v[:, :, : mask.shape[-1]]  # static decoding's span of the cache
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, D]
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Feed-forward layer: d_model -> ff_mult * d_model -> d_model with GELU."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        hidden = int(config.ff_mult * config.d_model)
        self.fc = nn.Linear(config.d_model, hidden, bias=config.bias)
        self.proj = nn.Linear(hidden, config.d_model, bias=config.bias)
        self.dropout = make_dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(config), CausalSelfAttention(config)
        self.norm2, self.mlp = make_norm(config), MLP(config)

    def forward(self, x, rope, mask, is_causal, pos, cache, layer) -> Tensor:
        x = x + self.attn(self.norm1(x), rope, mask, is_causal, pos, cache, layer)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """Decoder-only LM: token ids [B, T] -> logits [B, T, vocab_size].

    ``num_conditions`` > 0 adds a second embedding table: per-position condition ids [B, T] (0 = none,
    1..num_conditions) whose embeddings are summed with the tokens' (e.g. the semantic id aligned to the
    frame an acoustic position predicts); ids [B, T, K] sum K embeddings per position.
    """

    def __init__(self, config: TransformerConfig, vocab_size: int, num_conditions: int = 0) -> None:
        super().__init__()
        if config.d_model % config.n_head:
            raise ValueError(f"model.d_model ({config.d_model}) must be divisible by model.n_head ({config.n_head})")
        if config.position not in ("rope", "relative_bias"):
            raise ValueError(f"model.position must be 'rope' or 'relative_bias', got {config.position!r}")
        if config.position == "rope" and (config.d_model // config.n_head) % 2:
            raise ValueError("rope needs an even head size (model.d_model / model.n_head)")
        self.config, self.vocab_size = config, vocab_size
        head_dim = config.d_model // config.n_head
        self.embed = nn.Embedding(vocab_size, config.d_model)
        self.condition = nn.Embedding(num_conditions + 1, config.d_model) if num_conditions else None
        self.drop = make_dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = make_norm(config)
        self.head = nn.Linear(config.d_model, vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.embed.weight
        self.rope = RotaryEmbedding(head_dim, config.block_size, config.rope_base) if config.position == "rope" else None
        self.rel_bias = (
            RelativePositionBias(config.n_head, config.rel_num_buckets, config.rel_max_distance)
            if config.position == "relative_bias"
            else None
        )
        gpt2_init(self, config.n_layer)

    def make_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """A KV cache for ``batch_size`` sequences of up to ``max_len`` (default block_size) positions."""
        max_len = max_len or self.config.block_size
        if max_len > self.config.block_size:
            raise ValueError(f"sequence of {max_len} positions exceeds model.block_size={self.config.block_size}")
        c = self.config
        w = self.embed.weight
        return KVCache(c.n_layer, batch_size, c.n_head, c.d_model // c.n_head, max_len, w.dtype, w.device)

    def _mask(self, T: int, pos: int | Tensor, Tk: int, device: torch.device) -> tuple[Tensor | None, bool]:
        """Attention mask for queries pos..pos+T over keys 0..Tk, computed once for all layers
        (a tensor ``pos``: over the whole static cache, its unwritten positions masked)."""
        if isinstance(pos, Tensor):
            q_pos, k_pos = pos + torch.arange(T, device=device), torch.arange(Tk, device=device)
            if self.rel_bias is not None:
                return self.rel_bias(q_pos, k_pos), False
            return k_pos[None, :] <= q_pos[:, None], False
        if self.rel_bias is not None:
            q_pos = torch.arange(pos, pos + T, device=device)
            return self.rel_bias(q_pos, torch.arange(Tk, device=device)), False
        if T == 1:
            return None, False  # a single new query sees every cached key
        if pos == 0 and Tk == T:
            return None, True  # plain causal: lets SDPA pick its flash kernel
        q_pos = torch.arange(pos, pos + T, device=device)
        return torch.arange(Tk, device=device)[None, :] <= q_pos[:, None], False

    def forward(self, idx: Tensor, cache: KVCache | None = None, pos: int | Tensor = 0, last_only: bool = False,
                conditions: Tensor | None = None, span: int | None = None) -> Tensor:
        """Logits [B, T, V] for ids [B, T] at positions pos..pos+T (``last_only``: [B, 1, V]).

        ``pos`` as a 0-dim tensor (with a cache) is static decoding: every call has the same shapes,
        attending over the first ``span`` cache positions (default: all) with the unwritten ones masked
        (``torch.compile``-able: one graph per span)."""
        return self.head(self.features(idx, cache, pos, last_only, conditions, span))

    def features(self, idx: Tensor, cache: KVCache | None = None, pos: int | Tensor = 0, last_only: bool = False,
                 conditions: Tensor | None = None, span: int | None = None) -> Tensor:
        """The final-norm states [B, T, C] that ``head`` maps to logits (``forward`` without the head)."""
        B, T = idx.shape
        static = isinstance(pos, Tensor)
        if static and cache is None:
            raise ValueError("a tensor position (static decoding) needs a KV cache")
        if not static and pos + T > self.config.block_size:
            raise ValueError(f"sequence of {pos + T} positions exceeds model.block_size={self.config.block_size}")
        if (conditions is None) != (self.condition is None):
            raise ValueError("condition ids are given exactly when the model was built with num_conditions > 0")
        if span is not None and not (static and 0 < span <= cache.max_len):
            raise ValueError(f"span={span}: a tensor position and 1..{cache.max_len if cache else 0} cache positions")
        Tk = (span or cache.max_len) if static else pos + T if cache is not None else T
        mask, is_causal = self._mask(T, pos, Tk, idx.device)
        x = self.embed(idx)  # [B, T, C]
        if conditions is not None:
            c = self.condition(conditions)
            x = x + (c.sum(-2) if conditions.dim() == 3 else c)
        x = self.drop(x)
        checkpointing = self.config.activation_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if checkpointing:
                x = checkpoint(block, x, self.rope, mask, is_causal, pos, cache, i, use_reentrant=False)
            else:
                x = block(x, self.rope, mask, is_causal, pos, cache, i)
        if last_only:
            x = x[:, -1:]
        return self.norm(x)

    def num_params(self, include_embedding: bool = True) -> int:
        """Parameter count (a tied head is counted once)."""
        n = sum(p.numel() for p in self.parameters())
        return n if include_embedding else n - self.embed.weight.numel()

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward), PaLM appendix B: 6 N + 12 L d T.

        N counts every matmul weight, including the output projection; attention scores are
        counted over the full T x T square as in PaLM (a causal kernel does about half).
        """
        c = self.config
        matmul_params = self.num_params(include_embedding=False) + self.head.weight.numel()
        return 6 * matmul_params + 12 * c.n_layer * c.d_model * seq_len
