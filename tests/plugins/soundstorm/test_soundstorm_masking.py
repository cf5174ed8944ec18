"""The paper's training masks: prompt boundary, level and ratio distributions, what is hidden and what is scored."""
import math

import torch

from soundstage.data.token_batch import TokenBatch
from soundstage.plugins.soundstorm.masking import make_masked_batch, sample_masks, semantic_to_frames

B, Q, T, K = 4000, 4, 50, 16
MASK = K


def draw(lengths=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, K, (B, Q, T), generator=g)
    lengths = torch.full((B,), T) if lengths is None else lengths
    return codes, lengths, sample_masks(codes, lengths, MASK, g)


def test_level_weights_set_how_often_each_level_is_trained_and_levels_stay_hidden_above_it():
    g = torch.Generator().manual_seed(0)
    codes, lengths = torch.randint(0, K, (B, Q, T), generator=g), torch.full((B,), T)
    m = sample_masks(codes, lengths, MASK, g, level_weights=[4.0, 2.0, 1.0, 1.0])
    counts = torch.bincount(m["levels"], minlength=Q).float() / B
    assert torch.all((counts - torch.tensor([0.5, 0.25, 0.125, 0.125])).abs() < 0.03)
    only_first = sample_masks(codes, lengths, MASK, g, level_weights=[1.0, 0.0, 0.0, 0.0])
    assert int(only_first["levels"].max()) == 0
    free = torch.arange(T)[None] >= only_first["prompt_frames"][:, None]
    assert bool((only_first["inputs"][:, 1:] == MASK).all(1)[free].all())  # every finer level hidden after the prompt


def test_ratio_level_and_prompt_follow_the_paper_distributions():
    codes, lengths, m = draw()
    p = m["ratios"]
    assert abs(float(p.mean()) - 2 / math.pi) < 0.02  # E[cos u], u ~ U[0, pi/2]
    assert abs(float((p > math.cos(math.pi / 4)).float().mean()) - 0.5) < 0.03  # median at u = pi/4
    counts = torch.bincount(m["levels"], minlength=Q).float() / B
    assert torch.all((counts - 1 / Q).abs() < 0.03)  # q ~ U{1..Q}
    assert abs(float(m["prompt_frames"].float().mean()) - (T - 1) / 2) < 1.0  # t ~ U{0..T-1}
    assert int(m["prompt_frames"].min()) == 0 and int(m["prompt_frames"].max()) == T - 1
    free = T - m["prompt_frames"]
    n_masked = m["loss_mask"].sum(1)
    assert torch.equal(n_masked, torch.ceil(p * free).long().clamp(min=1))  # ratio p of the non-prompt frames


def test_prompt_untouched_finer_levels_hidden_coarser_levels_given():
    codes, lengths, m = draw()
    inputs, loss_mask, levels, prompt = m["inputs"], m["loss_mask"], m["levels"], m["prompt_frames"]
    t = torch.arange(T)
    in_prompt = t[None] < prompt[:, None]  # [B, T]
    assert not loss_mask[in_prompt].any()
    assert torch.equal(inputs.masked_select(in_prompt[:, None]), codes.masked_select(in_prompt[:, None]))
    for q in range(Q):
        at = (levels == q)
        rows_in, rows_codes = inputs[at], codes[at]  # [n, Q, T]
        after = ~in_prompt[at]
        assert torch.equal(rows_in[:, :q], rows_codes[:, :q])  # coarser levels are given
        assert (rows_in[:, q + 1 :].masked_select(after[:, None]) == MASK).all()  # finer: all masked after the prompt
        # level q: hidden exactly where the loss is, the true codes elsewhere
        assert torch.equal(rows_in[:, q] == MASK, loss_mask[at])
        assert torch.equal(rows_in[:, q][~loss_mask[at]], rows_codes[:, q][~loss_mask[at]])


def test_padding_is_never_masked_or_scored():
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(3))
    codes, lengths, m = draw(lengths)
    pad = torch.arange(T)[None] >= lengths[:, None]
    assert not m["loss_mask"][pad].any()
    assert (m["prompt_frames"] < lengths).all() and (m["loss_mask"].sum(1) >= 1).all()
    assert torch.equal(m["inputs"].masked_select(pad[:, None]), codes.masked_select(pad[:, None]))


def test_semantic_ids_are_repeated_to_the_frame_rate():
    ids = torch.tensor([[3, 1, 4]])
    assert semantic_to_frames(ids, 6, 25.0, 50.0).tolist() == [[3, 3, 1, 1, 4, 4]]
    assert semantic_to_frames(ids, 7, 25.0, 50.0).tolist() == [[3, 3, 1, 1, 4, 4, 4]]  # a frame past the ids


def test_masked_batch_targets_are_the_rows_level():
    g = torch.Generator().manual_seed(0)
    batch = TokenBatch({"acoustic": torch.randint(0, K, (8, Q, 20), generator=g),
                        "semantic": torch.randint(0, 5, (8, 10), generator=g)},
                       {"acoustic": torch.tensor([20] * 7 + [12]), "semantic": torch.tensor([10] * 7 + [6])})
    mb = make_masked_batch(batch, Q, MASK, 25.0, 50.0, g)
    assert torch.equal(mb.targets, batch.tokens["acoustic"][torch.arange(8), mb.levels])
    assert mb.frames is not None and mb.frames[7].sum() == 12
    assert torch.equal(mb.semantic[0], batch.tokens["semantic"][0].repeat_interleave(2))
