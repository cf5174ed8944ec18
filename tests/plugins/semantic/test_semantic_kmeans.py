"""Mini-batch k-means: convergence, streaming vs in-memory, determinism."""
import pytest
import torch

from soundstage.plugins.kmeans import MiniBatchKMeans


def blobs(n_per: int = 200, k: int = 4, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 10  # far apart relative to unit noise
    x = torch.cat([c + 0.3 * torch.randn(n_per, dim, generator=g) for c in centres])
    return x[torch.randperm(len(x), generator=g)], centres


def match_error(found: torch.Tensor, true: torch.Tensor) -> float:
    """Largest distance from a true centre to its nearest found centroid."""
    return float(torch.cdist(true, found).min(dim=1).values.max())


def test_converges_on_separable_clusters():
    x, centres = blobs()
    km = MiniBatchKMeans(4, 8)
    km.fit(x, generator=torch.Generator().manual_seed(0))
    assert match_error(km.centroids, centres) < 0.1
    ids = km(x)
    nearest_true = torch.cdist(x, centres).argmin(1)
    # every true cluster maps onto exactly one k-means cluster
    for c in range(4):
        assert ids[nearest_true == c].unique().numel() == 1
    assert ids.unique().numel() == 4


def test_streaming_fit_matches_in_memory_fit():
    x, centres = blobs(n_per=300, k=6, seed=1)
    full = MiniBatchKMeans(6, 8)
    full_inertia = float(full.fit(x, generator=torch.Generator().manual_seed(0)))
    stream = MiniBatchKMeans(6, 8)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # three passes over shuffled mini-batches of 100 points
        for batch in x[torch.randperm(len(x), generator=g)].split(100):
            stream.partial_fit(batch, generator=g)
    assert float(stream.inertia(x)) == pytest.approx(full_inertia, rel=0.02)
    assert match_error(stream.centroids, full.centroids) < 0.05
    assert float(stream.counts.sum()) == 3 * len(x)


def test_deterministic_for_a_seed_and_rejects_too_few_points():
    x, _ = blobs(seed=2)
    a, b = MiniBatchKMeans(16, 8), MiniBatchKMeans(16, 8)
    for km in (a, b):
        for batch in x.split(64):
            km.partial_fit(batch, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.centroids, b.centroids)
    with pytest.raises(ValueError, match="at least"):
        MiniBatchKMeans(16, 8).init_plus_plus(x[:10])


def test_state_dict_round_trip_keeps_assignments():
    x, _ = blobs(seed=4)
    km = MiniBatchKMeans(5, 8)
    km.fit(x, num_iters=5, generator=torch.Generator().manual_seed(0))
    other = MiniBatchKMeans(5, 8)
    other.load_state_dict(km.state_dict())
    assert bool(other.initialized)
    assert torch.equal(other(x), km(x))
