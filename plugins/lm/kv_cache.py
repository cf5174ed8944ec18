"""A preallocated key/value cache for autoregressive decoding."""
from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Keys and values of every layer, allocated once: ``k``, ``v`` are [n_layer, B, H, max_len, D].

    Writing a step into a fixed buffer (instead of concatenating) keeps decoding free of
    reallocation; ``update`` returns views of the filled prefix for attention.
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
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.batch_size = batch_size

    def update(self, layer: int, pos: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v [B, H, T, D] at positions pos..pos+T; return keys/values [B, H, pos+T, D]."""
        end = pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked to write up to {end}")
        self.k[layer, :, :, pos:end] = k
        self.v[layer, :, :, pos:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]
