"""MaskGIT decoding: the prompt stays, every token is filled, the cosine schedule sets the passes, windows slide."""
import math

import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.plugins.soundstorm.decoding import masked_after
from soundstage.plugins.soundstorm.stage import SoundStormStage

from soundstorm_test_helpers import CODEBOOK, Q, SEM_VOCAB, WINDOW_FRAMES, soundstorm_config


@pytest.fixture
def stage() -> SoundStormStage:
    torch.manual_seed(0)
    return SoundStormStage(soundstorm_config()).eval()


def record_passes(stage):
    """Masked tokens per level seen by each forward pass of the real network."""
    seen = []
    handle = stage.model.register_forward_hook(lambda mod, args, out: seen.append((args[0] == mod.mask_id).sum((0, 2)).tolist()))
    return seen, handle


def ids(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SEM_VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


def test_the_cosine_schedule_ends_with_nothing_masked():
    for total in (1, 7, 200):
        for steps in (1, 4, 16):
            counts = [masked_after(total, i, steps) for i in range(steps)]
            assert counts[-1] == 0 and counts == sorted(counts, reverse=True)
    assert masked_after(100, 0, 2) == math.floor(100 * math.cos(math.pi / 4))


@pytest.mark.parametrize("iterations", [[4, 1], [6, 3, 2]])
def test_every_token_is_filled_in_the_configured_passes(stage, iterations):
    seen, handle = record_passes(stage)
    out = stage.generate(ids(3, 10), iterations=iterations, generator=torch.Generator().manual_seed(0))  # 20 frames
    handle.remove()
    assert out.shape == (3, Q, WINDOW_FRAMES) and out.min() >= 0 and out.max() < CODEBOOK
    per_level = stage.config.decoding.__class__(iterations=iterations).per_level(Q)
    assert len(seen) == sum(per_level)  # one window: exactly sum(iterations) forward passes
    # level 0 unmasks on the cosine schedule, then each finer level starts fully masked
    level0 = [s[0] // 3 for s in seen[: per_level[0]]]
    assert level0 == [WINDOW_FRAMES] + [masked_after(WINDOW_FRAMES, i, per_level[0]) for i in range(per_level[0] - 1)]
    assert seen[per_level[0]][1] // 3 == WINDOW_FRAMES and seen[per_level[0]][0] == 0


def test_the_paper_default_is_16_passes_for_the_first_level_and_1_for_the_others():
    from soundstage.plugins.soundstorm.stage import SoundStormConfig

    assert SoundStormConfig().decoding.per_level(12) == [16] + [1] * 11  # 27 passes per window


def test_prompt_tokens_never_change(stage):
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, CODEBOOK, (2, Q, 7), generator=g)
    out = stage.generate(ids(2, 30), acoustic_prompt=prompt, temperature=1.5, generator=g)  # 60 frames: 4 windows
    assert out.shape == (2, Q, 60)
    assert torch.equal(out[..., :7], prompt)


def test_long_audio_slides_windows_prompted_with_the_end_of_the_last(stage):
    seen, handle = record_passes(stage)
    out = stage.generate(ids(2, 25), generator=torch.Generator().manual_seed(0))  # 50 frames, 20-frame windows
    handle.remove()
    assert out.shape == (2, Q, 50) and (out < CODEBOOK).all()
    per_window = sum(stage.config.decoding.per_level(Q))
    assert len(seen) == 4 * per_window
    # windows [0, 20), then 10 frames of context + 10 new: [10, 30), [20, 40), [30, 50)
    starts = [[n // 2 for n in s] for s in seen[::per_window]]  # each window's first pass, per row
    assert starts == [[20] * Q, [10] * Q, [10] * Q, [10] * Q]


def test_batched_rows_decode_as_they_would_alone(stage):
    semantic = ids(3, 10, seed=2)
    stage.config.decoding.choice_temperature = 0.0  # no choice noise: decoding is a function of the inputs
    together = stage.generate(semantic, temperature=0.0)
    alone = torch.cat([stage.generate(semantic[i : i + 1], temperature=0.0) for i in range(3)])
    assert torch.equal(together, alone)


def test_seeded_sampling_is_reproducible(stage):
    a = stage.generate(ids(2, 15), generator=torch.Generator().manual_seed(4), top_k=3)
    b = stage.generate(ids(2, 15), generator=torch.Generator().manual_seed(4), top_k=3)
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, key", [
    ({"acoustic_prompt": torch.zeros(1, Q, WINDOW_FRAMES, dtype=torch.long)}, "window_seconds"),
    ({"acoustic_prompt": torch.zeros(1, Q - 1, 5, dtype=torch.long)}, "num_quantizers"),
    ({"acoustic_prompt": torch.full((1, Q, 5), CODEBOOK)}, "codebook_size"),
    ({"semantic": torch.tensor([[0, SEM_VOCAB]])}, "semantic_vocab_size"),
    ({"semantic": torch.tensor([[-1, 0]])}, "semantic_vocab_size"),
])
def test_bad_input_is_a_one_line_error_naming_the_stage_and_key(stage, kwargs, key):
    kwargs = {"semantic": ids(1, 30)} | kwargs
    with pytest.raises(SoundstageError) as err:
        stage.generate(**kwargs)
    message = str(err.value)
    assert message.startswith("soundstorm: ") and key in message and "\n" not in message
