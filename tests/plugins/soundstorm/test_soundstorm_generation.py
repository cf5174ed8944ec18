"""AudioLMGenerator with SoundStorm as its acoustic generator: the same interface as with coarse + fine."""
import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.plugins.lm.generation import AudioLMGenerator
from soundstage.plugins.lm.stages import SemanticLMStage
from soundstage.plugins.soundstorm.stage import SoundStormStage

from soundstorm_test_helpers import Q, ToyCodec, ToySemanticTokenizer, semantic_config, soundstorm_config


@pytest.fixture
def generator() -> AudioLMGenerator:
    torch.manual_seed(0)
    return AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config()), codec=ToyCodec(),
                            soundstorm=SoundStormStage(soundstorm_config()), sampling={"soundstorm": {"top_k": 3}})


def test_the_generator_reports_its_levels_and_no_ar_stages(generator):
    assert generator.num_quantizers == Q and generator.coarse_lm is None and generator.fine_lm is None


def test_continue_audio_keeps_the_prompt_and_adds_the_requested_seconds(generator):
    sr, hop = generator.sample_rate, generator.codec.hop_length
    prompt = torch.randn(2, int(0.8 * sr))  # 16 codec frames: shorter than the 20-frame window
    out = generator.continue_audio(prompt, seconds=1.5, generator=torch.Generator().manual_seed(0))  # 46 frames: windows slide
    assert out.shape == (2, 46 * hop)
    torch.testing.assert_close(out[:, : 16 * hop], generator.codec.decode(generator.codec.encode(prompt)))
    assert generator.continue_audio(prompt[0], seconds=1.0, include_prompt=False).shape == (1, 20 * hop)


def test_from_semantic_with_and_without_a_prompt(generator):
    hop = generator.codec.hop_length
    ids = torch.randint(0, 8, (2, 13))
    assert generator.from_semantic(ids).shape == (2, 26 * hop)
    prompt = torch.randn(2, 10 * hop)
    out = generator.from_semantic(ids, generator=torch.Generator().manual_seed(0), prompt=prompt)
    assert out.shape == (2, 26 * hop)
    torch.testing.assert_close(out[:, : 10 * hop], generator.codec.decode(generator.codec.encode(prompt)))
    assert generator.generate(seconds=1.0, batch=3).shape == (3, 20 * hop)


def test_models_that_do_not_fit_together_are_rejected():
    with pytest.raises(SoundstageError, match=r"stage 'soundstorm' does not match the acoustic tokens of stage 'codec': levels \(config num_quantizers\): expects at least 3, gets 2"):
        AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config()), codec=ToyCodec(num_quantizers=2),
                         soundstorm=SoundStormStage(soundstorm_config()))
    with pytest.raises(SoundstageError, match=r"vocab_size \(config codebook_size\): expects 8, gets 16"):
        AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config()), codec=ToyCodec(codebook_size=16),
                         soundstorm=SoundStormStage(soundstorm_config()))
    with pytest.raises(SoundstageError, match="exactly one"):
        AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config()), codec=ToyCodec())
