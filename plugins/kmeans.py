"""Mini-batch k-means as an ``nn.Module``: k-means++ or random init, streaming updates, in-memory Lloyd.

The one k-means of the plugins: the semantic tokenizer fits its clusters with it, the codec seeds its
codebooks with it (``codec/quantizer.py``).

Centroids and per-centroid counts are buffers, so the fitted model saves, loads and moves to a
GPU like any module. Streaming updates are Sculley's mini-batch k-means with a per-centroid
learning rate of 1 / count: every centroid is the running mean of all points ever assigned to it.
Under ``torch.distributed`` the batch sums and counts are all-reduced, so every rank holds the same
centroids. Per-cluster sums use a one-hot matmul instead of ``index_add_`` because CUDA atomics
would make results depend on thread timing.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class MiniBatchKMeans(nn.Module):
    """K-means over ``dim``-dimensional points with ``num_clusters`` centroids (buffers)."""

    def __init__(self, num_clusters: int, dim: int, chunk_size: int = 8192) -> None:
        super().__init__()
        self.num_clusters, self.dim, self.chunk_size = num_clusters, dim, chunk_size
        self.register_buffer("centroids", torch.zeros(num_clusters, dim))
        self.register_buffer("counts", torch.zeros(num_clusters, dtype=torch.float64))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    # --- assignment ----------------------------------------------------------------------
    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean distances x [N, D] -> [N, K]."""
        c = self.centroids
        return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(-1)).clamp_min_(0)

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest centroid of every row of x [N, D] -> (ids [N] int64, squared distances [N])."""
        ids, dists = [], []
        for chunk in x.float().split(self.chunk_size):
            d = self.distances(chunk)
            best = d.min(dim=-1)
            ids.append(best.indices)
            dists.append(best.values)
        if not ids:
            return x.new_zeros(0, dtype=torch.long), x.new_zeros(0)
        return torch.cat(ids), torch.cat(dists)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster ids of x [..., D] -> [...]."""
        return self.assign(x.reshape(-1, x.shape[-1]))[0].reshape(x.shape[:-1])

    # --- fitting -------------------------------------------------------------------------
    @torch.no_grad()
    def init_plus_plus(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """k-means++ seeding from the points x [N, D] (rank 0's choice is broadcast to all ranks)."""
        x = x.float()
        n, k = x.shape[0], self.num_clusters
        if n < k:
            raise ValueError(f"k-means++ needs at least num_clusters={k} points, got {n}")
        chosen = torch.empty(k, dtype=torch.long, device=x.device)
        chosen[0] = torch.randint(n, (1,), generator=generator, device=x.device)
        best = (x - x[chosen[0]]).pow(2).sum(-1)  # [N] squared distance to the nearest chosen centre
        for i in range(1, k):
            total = best.sum()
            if total <= 0:  # fewer distinct points than clusters: fall back to uniform picks
                probs = torch.ones_like(best)
            else:
                probs = best / total
            chosen[i] = torch.multinomial(probs, 1, generator=generator)[0]
            best = torch.minimum(best, (x - x[chosen[i]]).pow(2).sum(-1))
        self.centroids.copy_(x[chosen])
        self.counts.zero_()
        if _distributed():
            dist.broadcast(self.centroids, src=0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def init_random(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Seed with ``num_clusters`` random points of x [N, D] (drawn with replacement when N is smaller;
        rank 0's choice is broadcast to all ranks)."""
        x = x.float()
        n, k = x.shape[0], self.num_clusters
        if n >= k:
            idx = torch.randperm(n, generator=generator, device=x.device)[:k]
        else:
            idx = torch.randint(0, n, (k,), generator=generator, device=x.device)
        self.centroids.copy_(x[idx])
        self.counts.zero_()
        if _distributed():
            dist.broadcast(self.centroids, src=0)
        self.initialized.fill_(True)

    def _cluster_sums(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cluster sums [K, D] and counts [K] of x [N, D] (deterministic one-hot matmul)."""
        sums = x.new_zeros(self.num_clusters, self.dim, dtype=torch.float64)
        counts = x.new_zeros(self.num_clusters, dtype=torch.float64)
        for xc, ic in zip(x.split(self.chunk_size), ids.split(self.chunk_size)):
            onehot = F.one_hot(ic, self.num_clusters).to(xc.dtype)  # [n, K]
            sums += (onehot.T @ xc).double()
            counts += onehot.sum(0).double()
        if _distributed():
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        return sums, counts

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One streaming update on the points x [N, D]; returns the batch inertia (mean sq. distance) before it."""
        x = x.float()
        if not bool(self.initialized):
            self.init_plus_plus(x, generator)
        ids, d = self.assign(x)
        sums, counts = self._cluster_sums(x, ids)
        new_counts = self.counts + counts
        hit = counts > 0
        c = self.centroids.double()
        # c_new = (c * n_old + sum) / (n_old + n_batch): the running mean of all assigned points.
        c[hit] += (sums[hit] - counts[hit, None] * c[hit]) / new_counts[hit, None]
        self.centroids.copy_(c.float())
        self.counts.copy_(new_counts)
        inertia = d.sum().double()
        n = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device)
        if _distributed():
            dist.all_reduce(inertia)
            dist.all_reduce(n)
        return (inertia / n.clamp_min(1)).float()

    @torch.no_grad()
    def fit(
        self, x: torch.Tensor, num_iters: int = 100, tol: float = 1e-6, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """In-memory Lloyd iterations on x [N, D] (k-means++ seeded unless seeded already), until the inertia
        stops falling by more than ``tol`` (relative) or ``num_iters``; returns the final inertia. ``counts``
        then holds each centroid's points of the last assignment."""
        x = x.float()
        if not bool(self.initialized):
            self.init_plus_plus(x, generator)
        previous = float("inf")
        for _ in range(num_iters):
            ids, d = self.assign(x)
            sums, counts = self._cluster_sums(x, ids)
            hit = counts > 0
            c = self.centroids.double()
            c[hit] = sums[hit] / counts[hit, None]  # empty clusters keep their centre
            self.centroids.copy_(c.float())
            self.counts.copy_(counts)
            total = torch.stack([d.sum().double(), torch.tensor(float(d.numel()), dtype=torch.float64, device=d.device)])
            if _distributed():  # every rank takes the same decision to stop (the loop's all-reduces must pair up)
                dist.all_reduce(total)
            inertia = float(total[0] / total[1].clamp_min(1))
            if previous - inertia <= tol * max(previous, 1e-12):
                break
            previous = inertia
        return self.inertia(x)

    @torch.no_grad()
    def inertia(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared distance of x [N, D] to its nearest centroid."""
        return self.assign(x.float())[1].mean()
