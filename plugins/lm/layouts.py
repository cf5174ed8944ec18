"""Token layouts: how each LM stage lays semantic ids and RVQ codes out as one flat token sequence.

Each layout is a small pattern object (as audiocraft's codebook patterns): it owns the vocabulary
(with per-level offsets so every RVQ level has its own ids), converts between streams and flat
sequences, marks which positions are predicted (the loss mask) and which RVQ level each is.

- ``SemanticLayout``: [BOS, s_0, s_1, ...], optionally with consecutive duplicates removed.
- ``CoarseLayout``: [s_0 .. s_{Ts-1}, SEP, c_0^0, c_0^1, .., c_0^{Q'-1}, c_1^0, ...] (frame by frame);
  loss only on the acoustic part. With ``aligned`` semantic conditioning, every position that predicts
  an acoustic token also gets the semantic id of that token's frame as a condition id (summed into its
  input embedding), so the model need not learn the alignment from the prefix alone; with a
  ``context`` of c, also the c semantic ids before and after it (one embedding table per offset).
  Aligned conditioning may also replace the prefix (``prefix=False``): [SEP, c_0^0, ...].
- ``FineLayout``: [coarse levels of a chunk, frame by frame | fine levels Q'..Q-1, frame by frame];
  loss only on the fine part.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from soundstage.data.token_batch import TokenBatch


@dataclass
class LMBatch:
    """Next-token training tensors, all [B, L]; ``levels`` is -1 where a target is not an RVQ code;
    ``conditions``: per-input-position condition ids [B, L] or [B, L, K] (summed over K), for layouts
    that have them."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor  # bool: the target counts in the loss
    levels: Tensor
    conditions: Tensor | None = None


def pack(seqs: list[Tensor], predicted: list[Tensor], levels: list[Tensor],
         conditions: list[Tensor] | None = None) -> LMBatch:
    """Right-pad per-sample sequences [L_i] (with per-position predicted flags, levels and optional
    condition ids) into a batch."""
    B, L = len(seqs), max(len(s) for s in seqs)
    device = seqs[0].device
    ids = torch.zeros(B, L, dtype=torch.long, device=device)
    pred = torch.zeros(B, L, dtype=torch.bool, device=device)
    lev = torch.full((B, L), -1, dtype=torch.long, device=device)
    cond = None if conditions is None else torch.zeros(B, L, *conditions[0].shape[1:], dtype=torch.long, device=device)
    for b, (s, p, lv) in enumerate(zip(seqs, predicted, levels)):
        ids[b, : len(s)], pred[b, : len(s)], lev[b, : len(s)] = s, p, lv
        if cond is not None:
            cond[b, : len(s)] = conditions[b]
    # position t predicts token t+1
    return LMBatch(ids[:, :-1], ids[:, 1:], pred[:, 1:], lev[:, 1:], None if cond is None else cond[:, :-1])


def flatten_levels(codes: Tensor, offsets: Tensor) -> Tensor:
    """Codes [..., Q, T] -> ids [..., T*Q] frame by frame, each level shifted by its offset."""
    return (codes + offsets[:, None]).transpose(-1, -2).reshape(*codes.shape[:-2], -1)


def unflatten_levels(ids: Tensor, offsets: Tensor) -> Tensor:
    """Inverse of ``flatten_levels``: ids [..., T*Q] -> codes [..., Q, T]."""
    Q = offsets.numel()
    return ids.reshape(*ids.shape[:-1], -1, Q).transpose(-1, -2) - offsets[:, None]


def dedup_consecutive(ids: Tensor) -> Tensor:
    """Drop consecutive repeats from a 1-D id sequence (e.g. 5 5 5 7 7 5 -> 5 7 5)."""
    return torch.unique_consecutive(ids)


class SemanticLayout:
    """[BOS, semantic ids...]; ids are 0..V-1 and BOS is V."""

    def __init__(self, semantic_vocab_size: int, dedup: bool = False) -> None:
        self.semantic_vocab_size, self.dedup = semantic_vocab_size, dedup
        self.bos = semantic_vocab_size
        self.vocab_size = semantic_vocab_size + 1
        self.num_conditions = 0
        self.token_range = (0, semantic_vocab_size)  # what generation may sample

    def target_range(self, q: int) -> tuple[int, int]:
        """Ids a target at RVQ level ``q`` is scored against: every id (semantic targets have no level)."""
        return 0, self.vocab_size

    def encode(self, semantic: Tensor) -> Tensor:
        """Semantic ids [T] -> sequence [1 + T'] (T' < T when duplicates are removed)."""
        if self.dedup:
            semantic = dedup_consecutive(semantic)
        return torch.cat([semantic.new_full((1,), self.bos), semantic])

    def decode(self, seq: Tensor) -> Tensor:
        """Sequence [..., 1 + T] -> semantic ids [..., T]."""
        return seq[..., 1:]

    def max_len(self, num_semantic: int) -> int:
        return 1 + num_semantic

    def make_batch(self, batch: TokenBatch) -> LMBatch:
        """The training sequences of a batch's ``semantic`` windows."""
        seqs, pred, lev = [], [], []
        for row in batch.rows():
            seq = self.encode(row["semantic"])
            seqs.append(seq)
            pred.append(torch.arange(len(seq), device=seq.device) > 0)
            lev.append(torch.full_like(seq, -1))
        return pack(seqs, pred, lev)


class CoarseLayout:
    """[semantic ids | SEP | first Q' RVQ levels, frame by frame]; ids: semantic 0..S-1, SEP = S,
    level q code c -> S + 1 + q*K + c."""

    def __init__(self, semantic_vocab_size: int, codebook_size: int, num_coarse: int,
                 aligned_rate_ratio: float | None = None, context: int = 0, prefix: bool = True) -> None:
        """``aligned_rate_ratio``: semantic ids per acoustic frame (semantic rate / acoustic rate) when
        acoustic positions are conditioned on their frame's semantic id; None for the prefix alone.
        ``context``: also condition on the ``context`` semantic ids before and after the frame's.
        ``prefix``: the sequence starts with the window's semantic ids (AudioLM); without it (aligned
        conditioning only) it starts at SEP."""
        if not prefix and not aligned_rate_ratio:
            raise ValueError("a coarse layout without the semantic prefix needs aligned semantic conditioning")
        self.prefix = prefix
        self.semantic_vocab_size, self.codebook_size, self.num_levels = semantic_vocab_size, codebook_size, num_coarse
        self.sep = semantic_vocab_size
        self.offsets = semantic_vocab_size + 1 + codebook_size * torch.arange(num_coarse)
        self.vocab_size = semantic_vocab_size + 1 + num_coarse * codebook_size
        self.aligned_rate_ratio = aligned_rate_ratio
        self.context = context if aligned_rate_ratio else 0
        # one table slot per offset -c..c, each with its own "none" id 0
        self.num_conditions = (2 * self.context + 1) * (semantic_vocab_size + 1) - 1 if aligned_rate_ratio else 0

    def prefix_len(self, num_semantic: int) -> int:
        """Positions before SEP: the semantic prefix (0 without one)."""
        return num_semantic if self.prefix else 0

    def conditions(self, semantic: Tensor, num_frames: int) -> Tensor:
        """Condition ids of ``encode(semantic, codes)``: [..., L] with L = prefix + 1 + Q'*num_frames, or
        [..., L, 2c + 1] with a context of c. Position p (which predicts token p + 1) gets 1 + the
        semantic id of that token's frame (with a context, the ids at offsets -c..c from it, each in its
        own slot of the table, 0 past either end); the prefix gets 0 (none). The frame's semantic id is
        the one whose span contains the frame's start (the last one past the end)."""
        Ts = semantic.shape[-1]
        frame = torch.arange(self.num_levels * num_frames + 1, device=semantic.device) // self.num_levels
        index = (frame * self.aligned_rate_ratio + 1e-6).floor().long().clamp(max=Ts - 1)
        prefix = semantic.new_zeros((*semantic.shape[:-1], self.prefix_len(Ts)))
        if not self.context:
            return torch.cat([prefix, semantic[..., index] + 1], dim=-1)
        offsets = torch.arange(-self.context, self.context + 1, device=semantic.device)
        at = index[:, None] + offsets  # [La, K]
        inside = (at >= 0) & (at < Ts)
        ids = torch.where(inside, semantic[..., at.clamp(0, Ts - 1)] + 1, 0)  # [..., La, K]
        return torch.cat([prefix[..., None].expand(*prefix.shape, len(offsets)), ids], dim=-2) + self._slot_starts(
            semantic.device)

    def _slot_starts(self, device: torch.device | None = None) -> Tensor:
        """Where each context offset's part of the condition table starts (its "none" id) [2c + 1]."""
        return (self.semantic_vocab_size + 1) * torch.arange(2 * self.context + 1, device=device)

    def unconditioned(self, conditions: Tensor) -> Tensor:
        """Condition ids of the same shape as ``conditions`` that say "none" everywhere (what the
        model sees for a sequence whose conditions training dropped; classifier-free guidance)."""
        none = torch.zeros_like(conditions)
        return none + self._slot_starts(conditions.device) if self.context else none

    def target_range(self, q: int) -> tuple[int, int]:
        """Ids a target at RVQ level ``q`` is scored against: that level's codes (what generation samples)."""
        return self.level_range(q)

    def level_range(self, q: int) -> tuple[int, int]:
        """Token ids of RVQ level q: [lo, hi)."""
        lo = int(self.offsets[q])
        return lo, lo + self.codebook_size

    def codes_to_tokens(self, codes: Tensor) -> Tensor:
        """Codes [..., Q', T] -> acoustic ids [..., T*Q']."""
        return flatten_levels(codes, self.offsets.to(codes.device))

    def tokens_to_codes(self, ids: Tensor) -> Tensor:
        """Acoustic ids [..., T*Q'] -> codes [..., Q', T]."""
        return unflatten_levels(ids, self.offsets.to(ids.device))

    def encode(self, semantic: Tensor, codes: Tensor) -> Tensor:
        """Semantic [..., Ts] + codes [..., Q', Ta] -> sequence [..., prefix + 1 + Q'*Ta]."""
        sep = semantic.new_full((*semantic.shape[:-1], 1), self.sep)
        prefix = semantic if self.prefix else semantic[..., :0]
        return torch.cat([prefix, sep, self.codes_to_tokens(codes)], dim=-1)

    def decode(self, seq: Tensor, num_semantic: int) -> tuple[Tensor, Tensor]:
        """Sequence [..., L] -> (its semantic prefix [..., Ts] (empty without one), codes [..., Q', Ta])."""
        p = self.prefix_len(num_semantic)
        return seq[..., :p], self.tokens_to_codes(seq[..., p + 1 :])

    def predicted(self, num_semantic: int, num_frames: int, device=None) -> tuple[Tensor, Tensor]:
        """Per-position (predicted flag, RVQ level) of a sequence [prefix + 1 + Q'*Ta]."""
        n_ac, n_in = self.num_levels * num_frames, self.prefix_len(num_semantic) + 1
        pred = torch.cat([torch.zeros(n_in, dtype=torch.bool), torch.ones(n_ac, dtype=torch.bool)])
        lev = torch.cat([torch.full((n_in,), -1), torch.arange(n_ac) % self.num_levels])
        return pred.to(device), lev.to(device)

    def max_len(self, num_semantic: int, num_frames: int) -> int:
        return self.prefix_len(num_semantic) + 1 + self.num_levels * num_frames

    def make_batch(self, batch: TokenBatch) -> LMBatch:
        """The training sequences of a batch's ``semantic`` and ``acoustic`` windows (its first Q' levels)."""
        seqs, pred, lev, cond = [], [], [], []
        for row in batch.rows():
            sem, codes = row["semantic"], row["acoustic"][: self.num_levels]
            seqs.append(self.encode(sem, codes))
            p, lv = self.predicted(sem.shape[-1], codes.shape[-1], sem.device)
            pred.append(p)
            lev.append(lv)
            if self.num_conditions:
                cond.append(self.conditions(sem, codes.shape[-1]))
        return pack(seqs, pred, lev, cond if self.num_conditions else None)


class FineLayout:
    """[coarse levels 0..Q'-1 | fine levels Q'..Q-1], each frame by frame; level q code c -> q*K + c."""

    def __init__(self, codebook_size: int, num_coarse: int, num_quantizers: int) -> None:
        if not 0 < num_coarse < num_quantizers:
            raise ValueError(f"need 0 < num_coarse_quantizers ({num_coarse}) < num_quantizers ({num_quantizers})")
        self.codebook_size, self.num_coarse, self.num_quantizers = codebook_size, num_coarse, num_quantizers
        self.offsets = codebook_size * torch.arange(num_quantizers)
        self.vocab_size = num_quantizers * codebook_size
        self.num_conditions = 0

    def target_range(self, q: int) -> tuple[int, int]:
        """Ids a target at RVQ level ``q`` is scored against: that level's codes (what generation samples)."""
        return self.level_range(q)

    def level_range(self, q: int) -> tuple[int, int]:
        return q * self.codebook_size, (q + 1) * self.codebook_size

    def coarse_tokens(self, coarse: Tensor) -> Tensor:
        """Coarse codes [..., Q', T] -> ids [..., T*Q'] (the conditioning prefix)."""
        return flatten_levels(coarse, self.offsets[: self.num_coarse].to(coarse.device))

    def fine_codes(self, ids: Tensor) -> Tensor:
        """Fine ids [..., T*(Q-Q')] -> codes [..., Q-Q', T]."""
        return unflatten_levels(ids, self.offsets[self.num_coarse :].to(ids.device))

    def encode(self, codes: Tensor) -> Tensor:
        """Codes [..., Q, T] -> sequence [..., Q*T] (coarse part, then fine part)."""
        Qc = self.num_coarse
        fine = flatten_levels(codes[..., Qc:, :], self.offsets[Qc:].to(codes.device))
        return torch.cat([self.coarse_tokens(codes[..., :Qc, :]), fine], dim=-1)

    def decode(self, seq: Tensor) -> Tensor:
        """Sequence [..., Q*T] -> codes [..., Q, T]."""
        T = seq.shape[-1] // self.num_quantizers
        n_coarse = self.num_coarse * T
        coarse = unflatten_levels(seq[..., :n_coarse], self.offsets[: self.num_coarse].to(seq.device))
        return torch.cat([coarse, self.fine_codes(seq[..., n_coarse:])], dim=-2)

    def predicted(self, num_frames: int, device=None) -> tuple[Tensor, Tensor]:
        """Per-position (predicted flag, RVQ level) of a sequence [Q*T]."""
        Qc, Qf = self.num_coarse, self.num_quantizers - self.num_coarse
        pred = torch.cat([torch.zeros(Qc * num_frames, dtype=torch.bool), torch.ones(Qf * num_frames, dtype=torch.bool)])
        lev = torch.cat([torch.arange(Qc * num_frames) % Qc, Qc + torch.arange(Qf * num_frames) % Qf])
        return pred.to(device), lev.to(device)

    def max_len(self, num_frames: int) -> int:
        return self.num_quantizers * num_frames

    def make_batch(self, batch: TokenBatch) -> LMBatch:
        """The training sequences of a batch's ``acoustic`` windows (all Q levels)."""
        levels = batch.tokens["acoustic"].shape[1]
        if levels != self.num_quantizers:
            raise ValueError(f"fine LM expects {self.num_quantizers} RVQ levels, batch has {levels}")
        seqs, pred, lev = [], [], []
        for row in batch.rows():
            codes = row["acoustic"]
            seqs.append(self.encode(codes))
            p, lv = self.predicted(codes.shape[-1], codes.device)
            pred.append(p)
            lev.append(lv)
        return pack(seqs, pred, lev)
