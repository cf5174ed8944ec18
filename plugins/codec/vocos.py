"""A frame-rate codec generator: STFT encoder and iSTFT (Vocos) decoder around the residual VQ.

SEANet (``model.py``) runs its convolutions at the sample rate with few channels; on a CPU those convs
reach a small fraction of the matmul rate, so a 2-core machine gets ~1000 updates an hour, too few for
intelligible reconstructions. Here every layer runs at the token frame rate (50 Hz) with wide
ConvNeXt blocks, i.e. dense matmuls: the encoder reads log-magnitude STFT frames, the decoder predicts
a magnitude and a phase per STFT bin and inverts them with ``torch.istft`` (Vocos, Siuzdak 2023;
WavTokenizer uses the same decoder for its codec). Non-causal (centred frames): no streaming.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import CodecGenerator
from .quantizer import ResidualVQ


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (kernel 7) -> LayerNorm -> pointwise MLP (GELU), residual, layer-scaled (Vocos)."""

    def __init__(self, dim: int, ff_mult: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
        self.scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:  # [B, D, T]
        y = self.norm(self.dwconv(x).transpose(1, 2))
        return x + (self.scale * self.ff(y)).transpose(1, 2)


class ConvNeXtStack(nn.Module):
    """``cin`` channels -> conv embedding -> ``layers`` ConvNeXt blocks -> LayerNorm -> ``cout`` channels."""

    def __init__(self, cin: int, dim: int, cout: int, layers: int, ff_mult: int) -> None:
        super().__init__()
        self.embed = nn.Conv1d(cin, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, ff_mult, 1.0 / max(1, layers)) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, cout)

    def forward(self, x: Tensor) -> Tensor:  # [B, cin, T] -> [B, T, cout]
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm_out(x.transpose(1, 2)))


def frame_padding(n_fft: int, hop_length: int) -> int:
    """Padding on each side so that frame ``k`` covers ``[k * hop - pad, k * hop - pad + n_fft)``: T / hop frames."""
    return (n_fft - hop_length) // 2


class STFTEncoder(nn.Module):
    """Waveform [B, T] (a whole number of hops) -> latents [B, D, T / hop] from log-magnitude STFT frames."""

    def __init__(self, hop_length: int, n_fft: int, dim: int, latent_dim: int, layers: int, ff_mult: int) -> None:
        super().__init__()
        self.hop_length, self.n_fft = hop_length, n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.net = ConvNeXtStack(n_fft // 2 + 1, dim, latent_dim, layers, ff_mult)

    def spectrum(self, wave: Tensor) -> Tensor:
        """Complex STFT [B, F, T / hop], frames placed as ``ISTFTDecoder`` expects them."""
        pad = frame_padding(self.n_fft, self.hop_length)
        padded = F.pad(wave.float(), (pad, pad + self.n_fft - self.hop_length - 2 * pad))
        return torch.stft(padded, self.n_fft, self.hop_length, window=self.window, center=False, return_complex=True)

    def forward(self, wave: Tensor) -> Tensor:
        logmag = torch.log(self.spectrum(wave).abs().clamp(min=1e-5))
        return self.net(logmag).transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """Latents [B, D, N] -> waveform [B, N * hop]: a magnitude and a phase per bin, then an inverse STFT.

    The inverse is Vocos's "same" padding: frames overlap-add, the sum is divided by the summed squared
    window, and ``frame_padding`` samples are cut from both ends, so N frames give exactly N * hop samples
    and the clip's edges are rebuilt from the frames that reach them (``torch.istft`` would need N + 1).
    """

    def __init__(self, hop_length: int, n_fft: int, dim: int, latent_dim: int, layers: int, ff_mult: int) -> None:
        super().__init__()
        self.hop_length, self.n_fft = hop_length, n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.net = ConvNeXtStack(latent_dim, dim, n_fft + 2, layers, ff_mult)

    def synthesize(self, spec: Tensor) -> Tensor:
        """Complex spectrum [B, F, N] -> waveform [B, N * hop]."""
        frames = spec.shape[-1]
        chunks = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[None, :, None]  # [B, n_fft, N]
        total = (frames - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, total), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        wave = F.fold(chunks, **fold)[:, 0, 0]  # overlap-add: [B, total]
        envelope = F.fold(self.window.square()[None, :, None].expand(1, -1, frames), **fold)[0, 0, 0]
        pad = frame_padding(self.n_fft, self.hop_length)
        return (wave / envelope.clamp(min=1e-8))[:, pad : pad + frames * self.hop_length]

    def forward(self, latents: Tensor) -> Tensor:
        log_mag, phase = self.net(latents).float().transpose(1, 2).chunk(2, dim=1)  # [B, F, N] each
        mag = torch.exp(log_mag).clamp(max=100.0)  # Vocos: the exp is clipped so one bin cannot blow up
        return self.synthesize(torch.polar(mag, phase))


class VocosCodec(CodecGenerator):
    """STFT encoder -> residual VQ -> iSTFT decoder, every layer at the frame rate ``sample_rate / hop``."""

    def __init__(self, sample_rate: int, hop_length: int, n_fft: int, dim: int, encoder_layers: int,
                 decoder_layers: int, ff_mult: int, latent_dim: int, num_quantizers: int, codebook_size: int,
                 **vq_kwargs) -> None:
        if n_fft < hop_length or n_fft % 2:
            raise ValueError(f"vocos n_fft {n_fft} must be even and at least the hop ({hop_length})")
        super().__init__(
            sample_rate, hop_length,
            STFTEncoder(hop_length, n_fft, dim, latent_dim, encoder_layers, ff_mult),
            ResidualVQ(latent_dim, num_quantizers, codebook_size, **vq_kwargs),
            ISTFTDecoder(hop_length, n_fft, dim, latent_dim, decoder_layers, ff_mult),
        )

