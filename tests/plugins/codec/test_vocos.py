"""The vocos codec generator: exact STFT framing, token shapes, learning one clip, and its limits."""
import math

import pytest
import torch
from codec_synth import synth_clip
from test_codec_stage import generator_updates, micro_config

from soundstage.errors import RecipeError
from soundstage.plugins.codec.stage import SoundStreamStage
from soundstage.plugins.codec.vocos import ISTFTDecoder, STFTEncoder


@pytest.mark.parametrize("hop, n_fft", [(320, 1280), (320, 640), (40, 160), (40, 101 + 1)])
def test_encoder_frames_invert_exactly_through_the_decoder_synthesis(hop, n_fft):
    """The decoder's overlap-add inverts the encoder's framing: N frames <-> N * hop samples, edges included."""
    encoder, decoder = STFTEncoder(hop, n_fft, 8, 4, 0, 1), ISTFTDecoder(hop, n_fft, 8, 4, 0, 1)
    wave = torch.randn(2, hop * 11)
    spec = encoder.spectrum(wave)
    assert spec.shape == (2, n_fft // 2 + 1, 11)
    assert torch.allclose(decoder.synthesize(spec), wave, atol=1e-5)


def vocos_config(**overrides):
    return micro_config(**{**dict(architecture="vocos", vocos_dim=32, vocos_encoder_layers=1,
                                  vocos_decoder_layers=2, vocos_ff_mult=2), **overrides})


def test_token_api_shapes_match_the_seanet_contract():
    stage = SoundStreamStage(vocos_config()).eval()
    assert (stage.hop_length, stage.frame_rate, stage.num_quantizers, stage.codebook_size) == (40, 400.0, 3, 32)
    for t in (40 * 9, 40 * 9 + 13):
        codes = stage.encode(torch.randn(2, t))
        assert codes.shape == (2, 3, math.ceil(t / 40)) and codes.dtype == torch.int64
        assert stage.decode(codes).shape == (2, codes.shape[-1] * 40)
        assert stage.decode(codes, length=t).shape == (2, t)
        assert torch.equal(stage.encode(torch.zeros(1, t)), stage.encode(torch.zeros(1, t)))


def test_vocos_overfits_one_clip():
    """Generator-only updates on one 0.5 s clip: the multi-scale mel loss falls at least 3x in 150 updates."""
    torch.manual_seed(0)
    stage = SoundStreamStage(vocos_config(strides=[2, 4, 5, 8], quantizer_dropout=0.0, codebook_size=64,
                                          mel_ffts=[128, 256, 512, 1024], mel_bins=[20, 40, 64, 64]))
    clip = synth_clip(0, 8000).unsqueeze(0)
    opt = torch.optim.Adam(stage.codec.parameters(), lr=2e-3)
    losses = generator_updates(stage, clip, 150, opt, "train/mel")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"vocos overfit: mel loss {first:.3f} -> {last:.3f}")
    assert last < first / 3, (first, last)


def test_streaming_and_unknown_architecture_are_refused():
    with pytest.raises(ValueError, match="streaming needs the causal seanet codec"):
        SoundStreamStage(vocos_config()).streaming()
    with pytest.raises(RecipeError, match="codec architecture .wavenet."):
        vocos_config(architecture="wavenet")
