"""History noise: only code inputs change, each to a code of its own level, at about the asked share."""
import torch

from soundstage.data.token_batch import TokenBatch
from soundstage.plugins.lm.input_noise import corrupt_history
from soundstage.plugins.lm.layouts import CoarseLayout
from soundstage.plugins.lm.stages import CoarseLMStage

from lm_test_helpers import coarse_config


def test_only_code_inputs_change_and_stay_within_their_level():
    layout = CoarseLayout(semantic_vocab_size=10, codebook_size=16, num_coarse=3)
    g = torch.Generator().manual_seed(0)
    batch = TokenBatch.whole(semantic=torch.randint(0, 10, (4, 20), generator=g),
                             acoustic=torch.randint(0, 16, (4, 3, 200), generator=g))
    b = layout.make_batch(batch)
    noisy = corrupt_history(b.inputs, b.levels, 0.3, layout.level_range, torch.Generator().manual_seed(1))
    changed = noisy != b.inputs
    input_levels = torch.nn.functional.pad(b.levels[:, :-1], (1, 0), value=-1)
    assert not changed[input_levels < 0].any()  # semantic prefix and separator untouched
    share = changed[input_levels >= 0].float().mean()
    assert 0.25 < share < 0.3  # 0.3 drawn, minus the 1/16 that redraw the same code
    for q in range(3):
        lo, hi = layout.level_range(q)
        at = input_levels == q
        assert ((noisy[at] >= lo) & (noisy[at] < hi)).all()
    assert torch.equal(corrupt_history(b.inputs, b.levels, 0.0, layout.level_range), b.inputs)


def test_the_stage_adds_noise_in_training_only():
    stage = CoarseLMStage(coarse_config(input_noise=1.0))
    g = torch.Generator().manual_seed(2)
    batch = TokenBatch.whole(semantic=torch.randint(0, 8, (2, 10), generator=g),
                             acoustic=torch.randint(0, 8, (2, 3, 20), generator=g))
    stage.eval()
    with torch.no_grad():
        a, b = stage._loss(batch)[0], stage._loss(batch)[0]
        assert a == b  # no noise at validation
        stage.train()
        torch.manual_seed(0)
        c = stage._loss(batch)[0]
        torch.manual_seed(1)
        d = stage._loss(batch)[0]
    assert c != d  # every code input redrawn in training
