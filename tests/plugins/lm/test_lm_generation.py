"""AudioLMGenerator end to end with tiny random models and a toy codec / semantic tokenizer."""
import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.plugins.lm.generation import AudioLMGenerator
from soundstage.plugins.lm.stages import CoarseLMStage, FineLMStage, SemanticLMStage

from lm_test_helpers import ToyCodec, ToySemanticTokenizer, coarse_config, fine_config, semantic_config


@pytest.fixture
def generator() -> AudioLMGenerator:
    torch.manual_seed(0)
    return AudioLMGenerator(
        ToySemanticTokenizer(), SemanticLMStage(semantic_config()), CoarseLMStage(coarse_config()),
        FineLMStage(fine_config()), ToyCodec(), sampling={"fine": {"top_k": 2}},
    )


def test_continue_audio_keeps_the_prompt_and_adds_the_requested_seconds(generator):
    sr, hop = generator.sample_rate, generator.codec.hop_length
    prompt = torch.randn(2, int(0.8 * sr))  # 0.8 s: 8 semantic tokens, 16 codec frames
    out = generator.continue_audio(prompt, seconds=1.5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, round((0.8 + 1.5) * generator.codec.frame_rate) * hop)
    # the prompt part is the codec's own reconstruction of the prompt
    torch.testing.assert_close(out[:, : 16 * hop], generator.codec.decode(generator.codec.encode(prompt)))
    new_only = generator.continue_audio(prompt[0], seconds=1.0, include_prompt=False)
    assert new_only.shape == (1, 20 * hop)


def test_unconditional_and_from_semantic_lengths(generator):
    hop = generator.codec.hop_length
    assert generator.generate(seconds=2.0, batch=3).shape == (3, 40 * hop)
    ids = torch.randint(0, 8, (2, 13))
    assert generator.from_semantic(ids).shape == (2, 26 * hop)


def test_seeded_generation_is_reproducible(generator):
    a = generator.generate(seconds=1.0, generator=torch.Generator().manual_seed(5))
    b = generator.generate(seconds=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_models_that_do_not_fit_together_are_rejected():
    with pytest.raises(SoundstageError, match="codebook_size"):
        AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config()), CoarseLMStage(coarse_config()),
                         FineLMStage(fine_config()), ToyCodec(codebook_size=16))


def test_continuation_with_a_deduplicating_semantic_lm_keeps_real_time_lengths():
    torch.manual_seed(0)
    gen = AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config(dedup=True)),
                           CoarseLMStage(coarse_config()), FineLMStage(fine_config()), ToyCodec())
    prompt = torch.zeros(1, int(0.8 * gen.sample_rate))  # silence: every semantic id repeats
    assert gen.continue_audio(prompt, seconds=1.0).shape == (1, 36 * gen.codec.hop_length)


def test_codec_levels_decode_only_the_first_levels_of_the_same_generated_codes(generator):
    """``sampling={"codec": {"levels": n}}``: the same codes, decoded from their first n RVQ levels."""
    from lm_test_helpers import QC

    first = AudioLMGenerator(generator.semantic_tokenizer, generator.semantic_lm, generator.coarse_lm, generator.fine_lm,
                             generator.codec, sampling={"fine": {"top_k": 2}, "codec": {"levels": QC}})
    ids = torch.randint(0, 8, (2, 10))
    codes = generator.acoustic_codes(ids, None, torch.Generator().manual_seed(3))
    assert codes.shape[1] > QC
    out = first.from_semantic(ids, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        torch.testing.assert_close(out, generator.codec.decode(codes[:, :QC]))
        assert not torch.allclose(out, generator.codec.decode(codes))


@pytest.mark.parametrize("codec", [{"levels": 0}, {"levels": 99}, {"level": 2}])
def test_codec_levels_outside_the_generated_levels_are_one_line_errors(generator, codec):
    with pytest.raises(SoundstageError, match="sampling codec .*the codec takes only 'levels', 1 to the"):
        AudioLMGenerator(generator.semantic_tokenizer, generator.semantic_lm, generator.coarse_lm, generator.fine_lm,
                         generator.codec, sampling={"codec": codec})
