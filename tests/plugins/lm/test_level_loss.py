"""Per-level cross-entropy: equals the full-vocabulary loss where a target may be any id, and the
cross-entropy of the level's slice of the logits where it is an RVQ code."""
import torch
import torch.nn.functional as F

from soundstage.data.token_batch import TokenBatch
from soundstage.plugins.lm.layouts import CoarseLayout, FineLayout
from soundstage.plugins.lm.level_loss import per_level_cross_entropy


def test_without_levels_it_is_the_full_vocabulary_cross_entropy():
    torch.manual_seed(0)
    hidden, weight = torch.randn(2, 7, 8), torch.randn(11, 8)
    targets, mask = torch.randint(0, 11, (2, 7)), torch.rand(2, 7) > 0.3
    levels = torch.full((2, 7), -1)
    ce, correct, lev = per_level_cross_entropy(hidden, weight, targets, mask, levels, lambda q: (0, 11))
    logits = hidden @ weight.T
    assert torch.allclose(ce, F.cross_entropy(logits[mask], targets[mask], reduction="none"), atol=1e-5)
    assert torch.equal(correct, (logits[mask].argmax(-1) == targets[mask]).float())
    assert torch.equal(lev, levels[mask])


def test_codes_are_scored_within_their_level_and_gradients_reach_only_those_rows():
    torch.manual_seed(0)
    layout = FineLayout(codebook_size=5, num_coarse=1, num_quantizers=3)  # ids: level q code c -> 5q + c
    codes = torch.randint(0, 5, (2, 3, 4))
    b = layout.make_batch(TokenBatch({"acoustic": codes}, {"acoustic": torch.tensor([4, 4])}))
    hidden = torch.randn(*b.inputs.shape, 6)
    weight = torch.randn(layout.vocab_size, 6, requires_grad=True)
    ce, _, lev = per_level_cross_entropy(hidden, weight, b.targets, b.mask, b.levels, layout.target_range)
    assert sorted(set(lev.tolist())) == [1, 2] and len(ce) == int(b.mask.sum())  # fine levels only
    h, t, levels = hidden[b.mask], b.targets[b.mask], b.levels[b.mask]
    expected = []
    for q in (1, 2):
        rows = levels == q
        expected.append(F.cross_entropy(h[rows] @ weight[5 * q : 5 * q + 5].T, t[rows] - 5 * q, reduction="none"))
    assert torch.allclose(ce, torch.cat(expected), atol=1e-5)
    ce.mean().backward()
    assert weight.grad[:5].abs().sum() == 0 and weight.grad[5:].abs().sum() > 0  # coarse rows are never targets


def test_coarse_layout_targets_are_scored_against_their_level():
    layout = CoarseLayout(semantic_vocab_size=4, codebook_size=3, num_coarse=2)
    assert [layout.target_range(q) for q in (0, 1)] == [(5, 8), (8, 11)]
