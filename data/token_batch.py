"""The batch the token datamodule hands the LM stages: aligned token windows, padded once, with their lengths."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


@dataclass
class TokenBatch:
    """A batch of aligned token windows: each stream right-padded with 0, and its true lengths."""

    tokens: dict[str, Tensor]  # "semantic": int64 [B, Ts]; "acoustic": int64 [B, Q, Ta]
    lengths: dict[str, Tensor]  # stream -> int64 [B]
    keys: list[str] = field(default_factory=list)  # the samples' shard keys

    @classmethod
    def of(cls, rows: list[dict[str, Tensor]], keys: list[str] | None = None) -> "TokenBatch":
        """The batch of per-row streams (same streams in every row, lengths may differ), padded once."""
        streams = list(rows[0]) if rows else []
        tokens, lengths = {}, {}
        for s in streams:
            arrays = [r[s] for r in rows]
            lens = [a.shape[-1] for a in arrays]
            out = arrays[0].new_zeros(len(arrays), *arrays[0].shape[:-1], max(lens), dtype=torch.int64)
            for i, a in enumerate(arrays):
                if a.shape[:-1] != arrays[0].shape[:-1]:
                    where = repr(keys[i]) if keys else f"row {i}"
                    raise ValueError(f"{s} tokens of {where} have shape {tuple(a.shape)}, others {tuple(arrays[0].shape)}")
                out[i, ..., : a.shape[-1]] = a
            tokens[s], lengths[s] = out, torch.tensor(lens, dtype=torch.int64, device=out.device)
        return cls(tokens, lengths, list(keys) if keys is not None else [])

    @classmethod
    def whole(cls, **tokens: Tensor) -> "TokenBatch":
        """A batch of unpadded streams (every row as long as the tensor), e.g. ``TokenBatch.whole(semantic=ids)``."""
        lengths = {s: torch.full((t.shape[0],), t.shape[-1], dtype=torch.int64, device=t.device) for s, t in tokens.items()}
        return cls(dict(tokens), lengths)

    def __len__(self) -> int:
        return next(iter(self.lengths.values())).shape[0] if self.lengths else 0

    def row(self, b: int) -> dict[str, Tensor]:
        """Row ``b``'s streams without their padding."""
        return {s: t[b, ..., : int(self.lengths[s][b])] for s, t in self.tokens.items()}

    def rows(self) -> list[dict[str, Tensor]]:
        """Every row's streams without their padding (the lengths read once, not per row)."""
        lengths = {s: v.tolist() for s, v in self.lengths.items()}
        return [{s: t[b, ..., : lengths[s][b]] for s, t in self.tokens.items()} for b in range(len(self))]

    def map(self, fn: Callable[[Tensor], Tensor]) -> "TokenBatch":
        """The batch with ``fn`` applied to every tensor (tokens and lengths)."""
        return TokenBatch({s: fn(t) for s, t in self.tokens.items()}, {s: fn(v) for s, v in self.lengths.items()},
                          self.keys)

    def to(self, device: torch.device | str) -> "TokenBatch":
        return self.map(lambda t: t.to(device))

    def pin_memory(self) -> "TokenBatch":
        """Called by the DataLoader's ``pin_memory=True`` (faster copies to a GPU)."""
        return self.map(Tensor.pin_memory)

    def head(self, n: int = 1) -> "TokenBatch":
        """The first ``n`` rows."""
        return TokenBatch({s: t[:n] for s, t in self.tokens.items()}, {s: v[:n] for s, v in self.lengths.items()},
                          self.keys[:n])
