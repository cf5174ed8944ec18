"""SEANet encoder/decoder: frame rates for several stride configs, lengths, and streaming == offline."""
import math

import pytest
import torch

from soundstage.plugins.codec.model import Decoder, Encoder, SoundStream, streaming


def small_codec(strides, causal=True, act="elu"):
    return SoundStream(16000, 4, 4, strides, 8, [1, 3], 7, causal, act, num_quantizers=3, codebook_size=16)


@pytest.mark.parametrize(
    "strides, causal, act",
    [([2, 4, 5, 8], True, "elu"), ([2, 2], False, "elu"), ([4, 5], True, "snake"), ([3, 5, 2], False, "snake")],
)
def test_frame_rate_and_lengths(strides, causal, act):
    codec = small_codec(strides, causal, act).eval()
    hop = math.prod(strides)
    assert codec.hop_length == hop
    for t in (hop * 7, hop * 7 + 1, hop * 7 - 1):
        wave = torch.randn(2, t)
        latents = codec.encoder(codec.pad(wave))
        assert latents.shape == (2, 8, math.ceil(t / hop))  # frames = sample_rate / hop per second
        codes = codec.encode(wave)
        assert codes.shape == (2, 3, math.ceil(t / hop)) and codes.dtype == torch.int64
        assert codec.decode(codes).shape == (2, math.ceil(t / hop) * hop)
        assert codec(wave).audio.shape == (2, t)


def test_streaming_chunks_equal_offline():
    torch.manual_seed(0)
    strides = [2, 4, 5]
    hop = math.prod(strides)
    enc = Encoder(4, strides, 8, [1, 3, 9], causal=True).eval()
    dec = Decoder(4, strides, 8, [1, 3, 9], causal=True).eval()
    wave = torch.randn(2, hop * 12)
    with torch.no_grad():
        offline_latents = enc(wave)
        offline_wave = dec(offline_latents)
        with streaming(enc):  # uneven chunk sizes, each a whole number of frames
            chunks = [enc(wave[:, a * hop : b * hop]) for a, b in [(0, 1), (1, 4), (4, 5), (5, 12)]]
        with streaming(dec):
            out = [dec(offline_latents[..., a:b]) for a, b in [(0, 3), (3, 4), (4, 9), (9, 12)]]
    torch.testing.assert_close(torch.cat(chunks, -1), offline_latents, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(out, -1), offline_wave, atol=1e-5, rtol=1e-5)
    # state is dropped on leaving the block: a fresh pass matches offline again
    with torch.no_grad():
        torch.testing.assert_close(enc(wave), offline_latents)


def test_streaming_needs_causal():
    with pytest.raises(ValueError, match="causal"):
        with streaming(small_codec([2, 2], causal=False)):
            pass
