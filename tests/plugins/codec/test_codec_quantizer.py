"""Residual VQ: k-means init, EMA updates, dead-code restart, quantizer dropout, straight-through."""
import torch
import torch.nn.functional as F

from soundstage.plugins.codec.quantizer import EMACodebook, ResidualVQ, kmeans


def test_kmeans_finds_separated_clusters():
    torch.manual_seed(0)
    centers = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2) for c in centers])
    found, counts = kmeans(x, 3, iters=10)
    # each true centre has a found centroid within 0.1 and every cluster has its 50 points
    assert torch.cdist(centers, found).min(1).values.max() < 0.1
    assert sorted(counts.tolist()) == [50.0, 50.0, 50.0]


def test_first_training_batch_initialises_codebook_by_kmeans():
    torch.manual_seed(0)
    cb = EMACodebook(dim=2, codebook_size=2, kmeans_iters=10).train()
    x = torch.cat([torch.full((20, 2), 3.0), torch.full((20, 2), -3.0)])
    assert not cb.initialized
    cb(x)
    assert cb.initialized
    assert torch.allclose(cb.embed.sort(0).values, torch.tensor([[-3.0, -3.0], [3.0, 3.0]]), atol=1e-4)


def test_ema_update_moves_codes_towards_cluster_means():
    cb = EMACodebook(dim=2, codebook_size=2, decay=0.5, dead_code_hits=0).train()
    cb.initialized.fill_(True)
    cb.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    cb.embed_avg.copy_(cb.embed * 1.0)
    cb.cluster_size.fill_(1.0)
    x = torch.tensor([[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]])  # means: code 0 <- (2, 2) x2, code 1 <- (9, 9) x1
    _, codes, _ = cb(x)
    assert codes.tolist() == [0, 0, 1]
    # cluster_size = 0.5*1 + 0.5*count; embed_avg = 0.5*old + 0.5*sum; embed = avg / (smoothed) size
    assert torch.allclose(cb.cluster_size, torch.tensor([1.5, 1.0]))
    assert torch.allclose(cb.embed[0], torch.tensor([2.0, 2.0]) / 1.5, atol=1e-3)
    assert torch.allclose(cb.embed[1], torch.tensor([9.5, 9.5]), atol=1e-3)


def test_dead_codes_restart_from_inputs():
    torch.manual_seed(0)
    # 16 vectors per batch, 4 codes, 8 hits: a code is dead once 32 vectors passed it by, i.e. on the 2nd batch
    cb = EMACodebook(dim=2, codebook_size=4, dead_code_hits=8).train()
    cb.initialized.fill_(True)
    cb.embed.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]))
    cb.embed_avg.copy_(cb.embed)
    x = 0.01 * torch.randn(16, 2)  # only code 0 is ever nearest
    restarted = [int(cb(x)[2]) for _ in range(2)]
    assert restarted == [0, 3]  # codes 1..3 unused while 32 vectors went by -> restarted on the second batch
    # the restarted codes are now input vectors, near the data, and their counters are reset
    assert cb.embed[1:].abs().max() < 0.1
    assert cb.unused_vectors[1:].tolist() == [0, 0, 0]


def test_dead_code_rule_counts_vectors_not_batches():
    """Evenly used codes are never restarted however small the batches are (the old 'unused for 4 batches'
    rule restarted ~45% of a 1024-code book every 4 batches of 200 vectors)."""
    torch.manual_seed(0)
    k = 64
    cb = EMACodebook(dim=2, codebook_size=k, dead_code_hits=8).train()
    cb.initialized.fill_(True)
    centres = torch.randn(k, 2) * 10
    cb.embed.copy_(centres)
    cb.embed_avg.copy_(centres)
    total = 0
    for _ in range(200):  # 8 vectors per batch: each code is unused in most batches
        x = centres[torch.randint(0, k, (8,))] + 0.01 * torch.randn(8, 2)
        total += int(cb(x)[2])
    assert total < k // 8


def test_eval_mode_never_updates():
    cb = EMACodebook(dim=2, codebook_size=4).eval()
    before = cb.embed.clone()
    cb(torch.randn(8, 2))
    assert not cb.initialized and torch.equal(cb.embed, before)


def test_rvq_levels_reduce_error_and_encode_decode_agree():
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=4, num_quantizers=4, codebook_size=32).train()
    z = torch.randn(4, 4, 50)
    for _ in range(5):
        rvq(z)  # k-means init + EMA
    rvq.eval()
    errors = [F.mse_loss(rvq.decode(rvq.encode(z, n)), z).item() for n in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:]))  # every extra level lowers the error
    out = rvq(z)
    assert out.codes.shape == (4, 4, 50)
    torch.testing.assert_close(out.quantized, rvq.decode(out.codes))
    assert torch.equal(rvq.encode(z, 2), out.codes[:, :2])


def test_quantizer_dropout_decodes_items_from_random_levels():
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=4, num_quantizers=4, codebook_size=16, quantizer_dropout=1.0, decay=1.0, dead_code_hits=0)
    z = torch.randn(64, 4, 3)
    rvq.train()(z)  # init
    out = rvq(z)  # decay=1: codebooks frozen, so decode() below sees the same codes
    seen = set()
    for i in range(64):  # each item equals the sum of its first n levels for exactly one n
        matches = [n for n in range(1, 5)
                   if torch.allclose(out.quantized[i : i + 1], rvq.decode(out.codes[i : i + 1, :n]), atol=1e-5)]
        assert len(matches) >= 1
        seen.add(matches[0])
    assert seen == {1, 2, 3, 4}


def test_straight_through_passes_gradient_unchanged():
    rvq = ResidualVQ(dim=4, num_quantizers=2, codebook_size=8).train()
    z = torch.randn(2, 4, 5, requires_grad=True)
    out = rvq(z)
    g = torch.randn_like(z)
    (out.quantized * g).sum().backward()
    torch.testing.assert_close(z.grad, g)
    assert out.commitment_loss.requires_grad and out.commitment_loss > 0
    assert {"perplexity/0", "usage/0", "restarted/1"} <= set(out.stats)


def test_checkpoints_with_the_old_batch_counter_still_load():
    cb = EMACodebook(dim=2, codebook_size=4)
    state = cb.state_dict()
    state["unused_steps"] = state.pop("unused_vectors") + 3  # the buffer's name before dead_code_hits
    fresh = EMACodebook(dim=2, codebook_size=4)
    fresh.load_state_dict(state)  # strict
    assert torch.equal(fresh.embed, cb.embed) and fresh.unused_vectors.tolist() == [0, 0, 0, 0]
