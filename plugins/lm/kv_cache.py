"""A preallocated key/value cache for autoregressive decoding."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class KVCache(nn.Module):
    """Keys and values of every layer, allocated once: ``k``, ``v`` are [n_layer, B, H, max_len, D].

    Writing a step into a fixed buffer (instead of concatenating) keeps decoding free of
    reallocation. ``update`` at an int position returns views of the filled prefix; at a tensor
    position (static decoding) it writes with ``index_copy_`` and returns the whole buffers, so
    every step has the same shapes (what ``torch.compile`` and CUDA graphs need; the attention
    mask hides the unwritten positions). The buffers are module buffers (not saved with a model)
    so a compiled step sees them at fixed addresses.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        head_dim: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.max_len = max_len
        self.batch_size = batch_size

    def update(self, layer: int, pos: int | Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v [B, H, T, D] at positions pos..pos+T; return keys/values [B, H, pos+T, D]
        (int ``pos``) or [B, H, max_len, D] (tensor ``pos``)."""
        if isinstance(pos, Tensor):
            at = pos + torch.arange(k.shape[2], device=k.device)
            self.k[layer].index_copy_(2, at, k)
            self.v[layer].index_copy_(2, at, v)
            return self.k[layer], self.v[layer]
        end = pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked to write up to {end}")
        self.k[layer, :, :, pos:end] = k
        self.v[layer, :, :, pos:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]
