"""Static decoding: one KV cache of the model's block size per batch size, and a ``torch.compile``d
one-token step over it (mode ``reduce-overhead``, i.e. CUDA graphs, on a GPU).

Every step has the same shapes (the position is a tensor; attention spans the whole cache with the
unwritten positions masked), so the step compiles once per batch size and a GPU replays it as one
graph instead of launching each kernel. Both are kept on the model object, outside its module tree
(nothing enters a checkpoint).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .kv_cache import KVCache
from .transformer import Transformer


def _one_token(model: Transformer, ids: Tensor, pos: Tensor, cache: KVCache, conditions: Tensor | None) -> Tensor:
    """Logits [B, V] of the token after ``ids`` [B, 1] at position ``pos`` (0-dim tensor)."""
    return model(ids, cache=cache, pos=pos, last_only=True, conditions=conditions)[:, -1]


def static_decoding(model: Transformer, batch_size: int, needed: int) -> tuple[KVCache, Callable[..., Tensor]]:
    """(the static cache for ``batch_size`` rows, the compiled step) of ``model``; ``needed``: positions
    this generation writes (at most the block size)."""
    if needed > model.config.block_size:
        raise ValueError(f"sequence of {needed} positions exceeds model.block_size={model.config.block_size}")
    state = model.__dict__.setdefault("_static_decoding", {})
    w = model.embed.weight
    key = (batch_size, w.dtype, w.device)
    if key not in state:
        state[key] = model.make_cache(batch_size, model.config.block_size)
    if "step" not in state:
        mode = "reduce-overhead" if w.is_cuda else None
        state["step"] = torch.compile(_one_token, mode=mode, dynamic=False)
    return state[key], state["step"]
