"""Token layouts: codes <-> flat sequences, loss masks and RVQ levels."""
import pytest
import torch

from soundstage.data.token_batch import TokenBatch
from soundstage.plugins.lm.layouts import CoarseLayout, FineLayout, SemanticLayout


def test_coarse_layout_round_trips_and_flattens_frame_by_frame():
    layout = CoarseLayout(semantic_vocab_size=10, codebook_size=16, num_coarse=3)
    semantic, codes = torch.randint(0, 10, (2, 5)), torch.randint(0, 16, (2, 3, 7))
    seq = layout.encode(semantic, codes)
    assert seq.shape == (2, 5 + 1 + 3 * 7)
    assert (seq[:, 5] == layout.sep).all()
    # frame 0 level 0, frame 0 level 1, ... each level in its own id range
    assert seq[0, 6:9].tolist() == [11 + codes[0, 0, 0], 11 + 16 + codes[0, 1, 0], 11 + 32 + codes[0, 2, 0]]
    sem_back, codes_back = layout.decode(seq, num_semantic=5)
    assert torch.equal(sem_back, semantic) and torch.equal(codes_back, codes)
    assert seq.max() < layout.vocab_size


def test_fine_layout_round_trips():
    layout = FineLayout(codebook_size=16, num_coarse=2, num_quantizers=5)
    codes = torch.randint(0, 16, (4, 5, 6))
    seq = layout.encode(codes)
    assert seq.shape == (4, 30) and seq.max() < layout.vocab_size
    assert torch.equal(layout.decode(seq), codes)
    assert torch.equal(layout.coarse_tokens(codes[:, :2]), seq[:, :12])
    assert torch.equal(layout.fine_codes(seq[:, 12:]), codes[:, 2:])


def test_coarse_loss_mask_covers_exactly_the_acoustic_targets():
    layout = CoarseLayout(semantic_vocab_size=10, codebook_size=16, num_coarse=2)
    batch = TokenBatch({"semantic": torch.randint(0, 10, (2, 6)), "acoustic": torch.randint(0, 16, (2, 4, 12))},
                       {"semantic": torch.tensor([6, 4]), "acoustic": torch.tensor([12, 8])})
    b = layout.make_batch(batch)
    for row, (ns, na) in enumerate([(6, 12), (4, 8)]):
        acoustic = b.targets[row] >= layout.sep + 1
        valid = torch.arange(b.targets.shape[1]) < ns + 2 * na  # beyond: right padding
        assert torch.equal(b.mask[row], acoustic & valid)
        assert int(b.mask[row].sum()) == 2 * na
        # each predicted target lies in the id range of the level it is tagged with
        for t in b.mask[row].nonzero().flatten().tolist():
            lo, hi = layout.level_range(int(b.levels[row, t]))
            assert lo <= b.targets[row, t] < hi
        # the first predicted target is level 0 of frame 0, read right after SEP
        first = int(b.mask[row].nonzero()[0])
        assert b.inputs[row, first] == layout.sep and b.levels[row, first] == 0


def test_fine_loss_mask_covers_only_the_fine_levels():
    layout = FineLayout(codebook_size=16, num_coarse=2, num_quantizers=4)
    batch = TokenBatch({"acoustic": torch.randint(0, 16, (2, 4, 5))}, {"acoustic": torch.tensor([5, 3])})
    b = layout.make_batch(batch)
    for row, n in enumerate([5, 3]):
        assert int(b.mask[row].sum()) == 2 * n
        tagged = b.levels[row][b.mask[row]]
        assert set(tagged.tolist()) == {2, 3}
        assert (b.targets[row][b.mask[row]] >= 2 * 16).all()  # fine ids start after the coarse levels


def test_semantic_layout_dedups_and_predicts_everything_after_bos():
    layout = SemanticLayout(semantic_vocab_size=10, dedup=True)
    seq = layout.encode(torch.tensor([3, 3, 3, 5, 5, 3, 9]))
    assert seq.tolist() == [10, 3, 5, 3, 9]
    b = layout.make_batch(TokenBatch({"semantic": torch.tensor([[1, 1, 2, 3], [4, 5, 6, 7]])},
                                     {"semantic": torch.tensor([4, 4])}))
    assert b.mask.sum(1).tolist() == [3, 4]  # the duplicate 1 is gone from row 0; padding is masked
    assert torch.equal(layout.decode(layout.encode(torch.tensor([1, 2, 3]))), torch.tensor([1, 2, 3]))


def test_aligned_conditions_give_each_acoustic_prediction_its_frames_semantic_id():
    # 2 semantic ids per 5 frames would not be whole; use the recipes' 1 semantic id per 2 frames
    layout = CoarseLayout(semantic_vocab_size=10, codebook_size=16, num_coarse=3, aligned_rate_ratio=0.5)
    semantic, codes = torch.randint(0, 10, (2, 4)), torch.randint(0, 16, (2, 3, 8))
    seq, cond = layout.encode(semantic, codes), layout.conditions(semantic, 8)
    assert cond.shape == seq.shape and layout.num_conditions == 10
    assert (cond[:, :4] == 0).all()  # the prefix positions predict semantic ids or SEP: no condition
    for p in range(4, seq.shape[1] - 1):  # position p predicts token p + 1: acoustic token k = p - 4
        frame = (p - 4) // 3
        assert torch.equal(cond[:, p], semantic[:, frame // 2] + 1)
    b = layout.make_batch(TokenBatch({"semantic": semantic, "acoustic": codes},
                                     {"semantic": torch.tensor([4, 3]), "acoustic": torch.tensor([8, 6])}))
    assert b.conditions.shape == b.inputs.shape
    assert torch.equal(b.conditions[0], cond[0, :-1])
    assert torch.equal(b.conditions[1, : 3 + 1 + 18 - 1], layout.conditions(semantic[1, :3], 6)[: 3 + 18])
    assert CoarseLayout(10, 16, 3).num_conditions == 0 and CoarseLayout(10, 16, 3).make_batch(
        TokenBatch({"semantic": semantic, "acoustic": codes},
                   {"semantic": torch.tensor([4, 4]), "acoustic": torch.tensor([8, 8])})).conditions is None


def test_aligned_context_gives_each_offset_its_own_slot_and_none_past_the_ends():
    layout = CoarseLayout(semantic_vocab_size=10, codebook_size=16, num_coarse=2, aligned_rate_ratio=1.0, context=1)
    assert layout.num_conditions == 3 * 11 - 1
    semantic, codes = torch.tensor([[4, 7, 9]]), torch.randint(0, 16, (1, 2, 3))
    cond = layout.conditions(semantic, 3)
    assert cond.shape == (*layout.encode(semantic, codes).shape, 3)
    assert cond[0, :3].tolist() == [[0, 11, 22]] * 3  # the prefix: "none" in every slot
    # position 3 + 2f + l predicts frame f's level l: slots hold ids f-1, f, f+1 (+1), 0 past either end
    assert cond[0, 3].tolist() == [0, 11 + 5, 22 + 8]
    assert cond[0, 5].tolist() == [5, 11 + 8, 22 + 10]
    assert cond[0, 7].tolist() == [8, 11 + 10, 22]
    b = layout.make_batch(TokenBatch({"semantic": semantic, "acoustic": codes},
                                     {"semantic": torch.tensor([3]), "acoustic": torch.tensor([3])}))
    assert b.conditions.shape == (*b.inputs.shape, 3) and torch.equal(b.conditions[0], cond[0, :-1])


def test_coarse_layout_without_the_prefix_starts_at_sep_with_the_same_acoustic_part_and_conditions():
    with_prefix = CoarseLayout(10, 16, 3, aligned_rate_ratio=0.5, context=1)
    layout = CoarseLayout(10, 16, 3, aligned_rate_ratio=0.5, context=1, prefix=False)
    semantic, codes = torch.randint(0, 10, (2, 4)), torch.randint(0, 16, (2, 3, 8))
    seq, full = layout.encode(semantic, codes), with_prefix.encode(semantic, codes)
    assert seq.shape == (2, 1 + 3 * 8) == (2, layout.max_len(4, 8)) and torch.equal(seq, full[:, 4:])
    sem_back, codes_back = layout.decode(seq, num_semantic=4)
    assert sem_back.shape == (2, 0) and torch.equal(codes_back, codes)
    assert torch.equal(layout.conditions(semantic, 8), with_prefix.conditions(semantic, 8)[:, 4:])
    b = layout.make_batch(TokenBatch({"semantic": semantic, "acoustic": codes},
                                     {"semantic": torch.tensor([4, 3]), "acoustic": torch.tensor([8, 6])}))
    assert b.mask.sum(1).tolist() == [3 * 8, 3 * 6] and bool(b.mask[:, 0].all())  # SEP predicts frame 0, level 0
    assert b.inputs[0, 0] == layout.sep and b.levels[0, 0] == 0


def test_coarse_layout_without_prefix_or_aligned_conditions_is_refused():
    with pytest.raises(ValueError, match="aligned"):
        CoarseLayout(10, 16, 3, prefix=False)
