"""Residual vector quantization with EMA codebooks (SoundStream / EnCodec style).

Each level is a codebook of K vectors updated by exponential moving averages (no gradients),
initialised by k-means on its first training batch; a code left unused while the batches since its
last use held ``dead_code_hits`` x ``codebook_size`` vectors (an evenly used code would have been hit
``dead_code_hits`` times in that span) is restarted from a random current input (SoundStream). Counting
vectors, not batches, keeps the rule independent of the batch size: with a few hundred vectors per batch
and 1024 codes, "unused for 4 batches" would restart codes of fair share all the time. Under DDP the statistics are summed over ranks and
random choices are broadcast from rank 0, so codebooks stay identical on every rank.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from soundstage.plugins.kmeans import MiniBatchKMeans


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(t: Tensor) -> Tensor:
    if _distributed():
        dist.all_reduce(t)
    return t


def _broadcast(t: Tensor) -> Tensor:
    if _distributed():
        dist.broadcast(t, src=0)
    return t


def kmeans(x: Tensor, k: int, iters: int) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on [N, D] from ``k`` random points (with replacement if N < K); returns (centroids
    [K, D], counts [K] of the last assignment). Under DDP, over every rank's points."""
    km = MiniBatchKMeans(k, x.shape[1]).to(x.device)
    km.init_random(x)
    km.fit(x, num_iters=iters, tol=0.0)
    return km.centroids.to(x.dtype), km.counts.to(x.dtype)


class EMACodebook(nn.Module):
    """One VQ level: nearest-neighbour lookup in an EMA-updated codebook of ``codebook_size`` x ``dim``."""

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.99, kmeans_iters: int = 10,
                 dead_code_hits: float = 8.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.codebook_size, self.decay, self.eps = codebook_size, decay, eps
        self.kmeans_iters, self.dead_code_hits = kmeans_iters, dead_code_hits
        embed = torch.randn(codebook_size, dim)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        # vectors quantized (over all ranks) since each code was last used
        self.register_buffer("unused_vectors", torch.zeros(codebook_size, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before the vector-counting rule hold ``unused_steps`` (batches): start counting afresh
        if state_dict.pop(prefix + "unused_steps", None) is not None and prefix + "unused_vectors" not in state_dict:
            state_dict[prefix + "unused_vectors"] = torch.zeros_like(self.unused_vectors)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def lookup(self, x: Tensor) -> Tensor:
        """Nearest code index for each row of ``x`` [N, D] -> [N]."""
        # |x|^2 is the same for every code, so it is left out of the distance
        return (self.embed.pow(2).sum(1) - 2 * x @ self.embed.t()).argmin(1)

    @torch.no_grad()
    def init_kmeans(self, x: Tensor) -> None:
        centroids, counts = kmeans(x, self.codebook_size, self.kmeans_iters)
        self.embed.copy_(_broadcast(centroids))
        # a centroid no point chose (duplicates when a batch has fewer vectors than codes) gets count 1, not 0:
        # with 0 its EMA sum would be 0 too and the first update would move it to the origin
        self.cluster_size.copy_(_broadcast(counts.clamp(min=1.0)))
        self.embed_avg.copy_(self.embed * self.cluster_size[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, x: Tensor, codes: Tensor) -> Tensor:
        """EMA step towards the batch's cluster means, then restart dead codes; returns #restarted."""
        k, d = self.embed.shape
        stats = torch.zeros(k, d + 1, device=x.device)
        stats[:, :d].index_add_(0, codes, x)  # per-code sums
        stats[:, d] = torch.bincount(codes, minlength=k).float()  # per-code counts
        stats = _all_reduce_sum(stats)  # one collective per level: sums and counts together
        self.cluster_size.lerp_(stats[:, d], 1 - self.decay)
        self.embed_avg.lerp_(stats[:, :d], 1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + k * self.eps) * total  # Laplace smoothing
        self.embed.copy_(self.embed_avg / smoothed[:, None])

        self.unused_vectors.add_(stats[:, d].sum().long()).masked_fill_(stats[:, d] > 0, 0)
        if self.dead_code_hits <= 0:
            return torch.zeros((), device=x.device)
        dead = self.unused_vectors >= self.dead_code_hits * k  # identical on all ranks (global counts)
        n_dead = dead.sum()
        if n_dead > 0:
            mean_usage = total / k
            fresh = _broadcast(x[torch.randint(0, x.shape[0], (k,), device=x.device)])
            self.embed[dead] = fresh[dead]
            self.embed_avg[dead] = fresh[dead] * mean_usage
            self.cluster_size[dead] = mean_usage
            self.unused_vectors[dead] = 0
        return n_dead

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [N, D] -> (quantized [N, D], codes [N], #restarted); updates the codebook in training."""
        restarted = torch.zeros((), device=x.device)
        if self.training and not bool(self.initialized):
            self.init_kmeans(x.detach())
        codes = self.lookup(x.detach())
        quantized = F.embedding(codes, self.embed)
        if self.training:
            restarted = self.update(x.detach(), codes)
        return quantized, codes, restarted


@dataclass
class RVQOutput:
    quantized: Tensor  # [B, D, T] with straight-through gradients to the input
    codes: Tensor  # [B, Q, T] int64
    commitment_loss: Tensor  # scalar
    stats: dict[str, Tensor]
    first: Tensor  # [B, D, T] the first level's vectors, straight-through to the input (semantic distillation)


class ResidualVQ(nn.Module):
    """``num_quantizers`` EMA codebooks, each quantizing the residual the previous levels left.

    With quantizer dropout, a ``quantizer_dropout`` share of the batch items is reconstructed from a
    random number of levels in [1, Q] (DAC), so one model serves every bitrate. All levels still run
    on every rank, which keeps the per-level collectives of DDP in step.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, decay: float = 0.99,
                 kmeans_iters: int = 10, dead_code_hits: float = 8.0, quantizer_dropout: float = 0.0) -> None:
        super().__init__()
        self.num_quantizers, self.codebook_size = num_quantizers, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.levels = nn.ModuleList(
            EMACodebook(dim, codebook_size, decay, kmeans_iters, dead_code_hits) for _ in range(num_quantizers)
        )

    def _levels(self, n: int | None) -> int:
        n = self.num_quantizers if n is None else n
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"num_quantizers must be in [1, {self.num_quantizers}], got {n}")
        return n

    def forward(self, z: Tensor, num_quantizers: int | None = None) -> RVQOutput:
        with torch.autocast(z.device.type, enabled=False):  # distances and EMA sums in fp32 under bf16-mixed
            return self._forward(z, num_quantizers)

    def _forward(self, z: Tensor, num_quantizers: int | None) -> RVQOutput:
        b, d, t = z.shape
        n_q = self._levels(num_quantizers)
        x = z.transpose(1, 2).reshape(b * t, d).float()  # [N, D], quantize in fp32
        n_item = torch.full((b,), n_q, device=z.device)  # levels each batch item is decoded from
        if self.training and self.quantizer_dropout > 0:
            drop = torch.rand(b, device=z.device) < self.quantizer_dropout
            n_item = torch.where(drop, torch.randint(1, n_q + 1, (b,), device=z.device), n_item)
        n_vec = n_item.repeat_interleave(t).unsqueeze(1)  # [N, 1]
        run = self.num_quantizers if self.training else n_q  # training runs every level (see class doc)

        residual, quantized = x, torch.zeros_like(x)
        codes, commit, stats = [], x.new_zeros(()), {}
        first = x
        for i, level in enumerate(self.levels[:run]):
            q, c, restarted = level(residual)
            if i == 0:
                first = x + (q - x).detach()
            keep = (n_vec > i).float()  # [N, 1]
            quantized = quantized + q * keep
            err = (residual - q).pow(2).mean(1, keepdim=True)  # commitment pulls the encoder towards the codes
            commit = commit + (err * keep).sum() / keep.sum().clamp(min=1)
            residual = residual - q
            codes.append(c.view(b, t))
            if self.training:
                probs = torch.bincount(c, minlength=self.codebook_size).float() / c.numel()
                stats[f"perplexity/{i}"] = torch.exp(-(probs * probs.clamp(min=1e-10).log()).sum())
                stats[f"usage/{i}"] = (probs > 0).float().mean()
                stats[f"restarted/{i}"] = restarted.float()
        if self.training:  # latent energy the levels leave unexplained (all levels; 0 = lossless)
            stats["quant_error"] = residual.pow(2).sum() / x.pow(2).sum().clamp(min=1e-12)
        out = x + (quantized - x).detach()  # straight-through estimator
        return RVQOutput(
            quantized=out.view(b, t, d).transpose(1, 2).to(z.dtype),
            codes=torch.stack(codes[:n_q], dim=1),  # [B, Q, T]
            commitment_loss=commit / run,
            stats=stats,
            first=first.view(b, t, d).transpose(1, 2).to(z.dtype),
        )

    @torch.no_grad()
    def encode(self, z: Tensor, num_quantizers: int | None = None) -> Tensor:
        """Latents [B, D, T] -> codes [B, Q, T] with the first ``num_quantizers`` levels; no updates."""
        b, d, t = z.shape
        residual = z.transpose(1, 2).reshape(b * t, d).float()
        codes = []
        with torch.autocast(z.device.type, enabled=False):
            for level in self.levels[: self._levels(num_quantizers)]:
                c = level.lookup(residual)
                residual = residual - F.embedding(c, level.embed)
                codes.append(c.view(b, t))
        return torch.stack(codes, dim=1)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes [B, Q, T] (Q <= num_quantizers) -> latents [B, D, T]: the sum of the levels' vectors."""
        self._levels(codes.shape[1])
        out = sum(F.embedding(codes[:, i], level.embed) for i, level in enumerate(self.levels[: codes.shape[1]]))
        return out.transpose(1, 2)  # [B, T, D] -> [B, D, T]
