"""SoundStream generator: SEANet conv encoder/decoder around a residual VQ, with streaming convolutions.

Every convolution pads so that ``T_out = T_in / stride`` (or ``* stride`` for the transposed ones).
With ``causal=True`` all padding is on the left, so the encoder and decoder can also run chunk by
chunk: inside ``with streaming(module):`` each conv keeps the tail of its input (or, for transposed
convs, the overlap of its output) between calls, and chunked output equals the offline output.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import WNConv1d, WNConvTranspose1d

from .quantizer import ResidualVQ


class Snake(nn.Module):
    """Snake activation ``x + sin^2(a x) / a`` with a learned per-channel ``a`` (DAC)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


def activation(name: str, channels: int) -> nn.Module:
    """The generator's nonlinearity by name: ``elu`` (SoundStream) or ``snake`` (DAC)."""
    if name == "elu":
        return nn.ELU()
    if name == "snake":
        return Snake(channels)
    raise ValueError(f"unknown activation {name!r} (expected 'elu' or 'snake')")


class StreamableConv1d(nn.Module):
    """Weight-normed Conv1d padded so that ``T_out = T_in // stride``; causal ones can stream."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: int = 1, dilation: int = 1, causal: bool = True
    ) -> None:
        super().__init__()
        self.conv = WNConv1d(cin, cout, kernel_size, stride, dilation=dilation)
        nn.init.zeros_(self.conv.bias)  # see SoundStream: biases at 0 keep the latents data-driven at init
        self.pad = (kernel_size - 1) * dilation + 1 - stride  # effective kernel minus stride
        if self.pad < 0:
            raise ValueError(f"kernel {kernel_size} (dilation {dilation}) is shorter than stride {stride}")
        self.causal = causal
        self.streaming = False
        self.state: Tensor | None = None  # streaming: the last `pad` input samples seen

    def forward(self, x: Tensor) -> Tensor:  # [B, Cin, T] -> [B, Cout, T // stride]
        if self.streaming:
            if self.state is None:
                self.state = x.new_zeros(x.shape[0], x.shape[1], self.pad)  # == offline zero padding
            x = torch.cat([self.state, x], dim=-1)
            self.state = x[..., x.shape[-1] - self.pad :]
        elif self.causal:
            x = F.pad(x, (self.pad, 0))
        else:
            x = F.pad(x, (self.pad // 2, self.pad - self.pad // 2))
        return self.conv(x)


class StreamableConvTranspose1d(nn.Module):
    """Weight-normed ConvTranspose1d trimmed so that ``T_out = T_in * stride``; causal ones can stream."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, causal: bool = True) -> None:
        super().__init__()
        self.conv = WNConvTranspose1d(cin, cout, kernel_size, stride)
        nn.init.zeros_(self.conv.bias)
        self.stride = stride
        self.trim = kernel_size - stride  # output samples that overlap the next input frame
        self.causal = causal
        self.streaming = False
        self.state: Tensor | None = None  # streaming: the overlap (without bias) owed to the next chunk

    def forward(self, x: Tensor) -> Tensor:  # [B, Cin, N] -> [B, Cout, N * stride]
        y = self.conv(x)  # [B, Cout, N * stride + trim]
        n = x.shape[-1] * self.stride
        if self.streaming:
            if self.state is not None:
                y = torch.cat([y[..., : self.trim] + self.state, y[..., self.trim :]], dim=-1)
            self.state = y[..., n:] - self.conv.bias[:, None]  # the bias is added once, by the next chunk
            return y[..., :n]
        left = 0 if self.causal else self.trim // 2
        return y[..., left : left + n]


@contextmanager
def streaming(module: nn.Module) -> Iterator[None]:
    """Run ``module``'s causal convolutions statefully, chunk by chunk, inside the block."""
    convs = [m for m in module.modules() if isinstance(m, (StreamableConv1d, StreamableConvTranspose1d))]
    if any(not m.causal for m in convs):
        raise ValueError("streaming needs a causal model (causal=True)")
    for m in convs:
        m.streaming, m.state = True, None
    try:
        yield
    finally:
        for m in convs:
            m.streaming, m.state = False, None


class ResidualUnit(nn.Module):
    """``x + conv1x1(act(conv_k,dilated(act(x))))``: the SEANet/DAC residual unit."""

    def __init__(self, dim: int, dilation: int, kernel_size: int, causal: bool, act: str) -> None:
        super().__init__()
        self.block = nn.Sequential(
            activation(act, dim),
            StreamableConv1d(dim, dim, kernel_size, dilation=dilation, causal=causal),
            activation(act, dim),
            StreamableConv1d(dim, dim, 1, causal=causal),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class EncoderBlock(nn.Module):
    """Residual units at ``cin`` channels, then a strided conv down to ``cout`` channels."""

    def __init__(self, cin: int, cout: int, stride: int, dilations: list[int], kernel_size: int, causal: bool, act: str):
        super().__init__()
        self.block = nn.Sequential(
            *[ResidualUnit(cin, d, kernel_size, causal, act) for d in dilations],
            activation(act, cin),
            StreamableConv1d(cin, cout, 2 * stride, stride=stride, causal=causal),
        )

    def forward(self, x: Tensor) -> Tensor:  # [B, cin, T] -> [B, cout, T / stride]
        return self.block(x)


class DecoderBlock(nn.Module):
    """A transposed conv up from ``cin`` to ``cout`` channels, then residual units."""

    def __init__(self, cin: int, cout: int, stride: int, dilations: list[int], kernel_size: int, causal: bool, act: str):
        super().__init__()
        self.block = nn.Sequential(
            activation(act, cin),
            StreamableConvTranspose1d(cin, cout, 2 * stride, stride, causal=causal),
            *[ResidualUnit(cout, d, kernel_size, causal, act) for d in dilations],
        )

    def forward(self, x: Tensor) -> Tensor:  # [B, cin, N] -> [B, cout, N * stride]
        return self.block(x)


class Encoder(nn.Module):
    """SEANet encoder: waveform [B, T] -> latents [B, D, T / prod(strides)]; channels double per block."""

    def __init__(self, channels: int, strides: list[int], latent_dim: int, dilations: list[int],
                 kernel_size: int = 7, causal: bool = True, act: str = "elu") -> None:
        super().__init__()
        layers: list[nn.Module] = [StreamableConv1d(1, channels, kernel_size, causal=causal)]
        ch = channels
        for s in strides:
            layers.append(EncoderBlock(ch, 2 * ch, s, dilations, kernel_size, causal, act))
            ch *= 2
        layers += [activation(act, ch), StreamableConv1d(ch, latent_dim, 3, causal=causal)]
        self.net = nn.Sequential(*layers)

    def forward(self, wave: Tensor) -> Tensor:  # [B, T] -> [B, D, T']
        return self.net(wave.unsqueeze(1))


class Decoder(nn.Module):
    """SEANet decoder: latents [B, D, T'] -> waveform [B, T' * prod(strides)]; channels halve per block."""

    def __init__(self, channels: int, strides: list[int], latent_dim: int, dilations: list[int],
                 kernel_size: int = 7, causal: bool = True, act: str = "elu") -> None:
        super().__init__()
        ch = channels * 2 ** len(strides)
        layers: list[nn.Module] = [StreamableConv1d(latent_dim, ch, kernel_size, causal=causal)]
        for s in reversed(strides):
            layers.append(DecoderBlock(ch, ch // 2, s, dilations, kernel_size, causal, act))
            ch //= 2
        layers += [activation(act, ch), StreamableConv1d(ch, 1, kernel_size, causal=causal)]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: Tensor) -> Tensor:  # [B, D, T'] -> [B, T]
        return self.net(latents).squeeze(1)


@dataclass
class CodecOutput:
    """One generator pass: the reconstruction plus what the losses and logs need."""

    audio: Tensor  # [B, T] reconstruction
    codes: Tensor  # [B, Q, T'] int64
    commitment_loss: Tensor  # scalar
    stats: dict[str, Tensor]  # per-level usage / perplexity / restarts
    first_level: Tensor  # [B, D, T'] the first RVQ level's vectors (straight-through to the encoder)


class CodecGenerator(nn.Module):
    """Encoder -> residual VQ -> decoder. ``forward`` trains; ``encode``/``decode`` never update codebooks.

    The encoder maps a waveform [B, T] (a whole number of hops) to latents [B, D, T / hop]; the decoder
    maps latents back to [B, T' * hop]. ``SoundStream`` (SEANet, sample-rate convolutions, streamable)
    and ``vocos.VocosCodec`` (frame-rate ConvNeXt, STFT in and iSTFT out) are the two generators.
    """

    def __init__(self, sample_rate: int, hop_length: int, encoder: nn.Module, quantizer: ResidualVQ,
                 decoder: nn.Module) -> None:
        super().__init__()
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder

    def pad(self, wave: Tensor) -> Tensor:
        """Right-pad [B, T] with zeros to a whole number of frames."""
        extra = -wave.shape[-1] % self.hop_length
        return F.pad(wave, (0, extra)) if extra else wave

    def forward(self, wave: Tensor, num_quantizers: int | None = None) -> CodecOutput:  # [B, T]
        latents = self.encoder(self.pad(wave))  # [B, D, T']
        q = self.quantizer(latents, num_quantizers)
        audio = self.decoder(q.quantized)[..., : wave.shape[-1]]  # [B, T]
        return CodecOutput(audio, q.codes, q.commitment_loss, q.stats, q.first)

    def encode(self, wave: Tensor, num_quantizers: int | None = None) -> Tensor:
        """[B, T] waveform -> int64 codes [B, Q, ceil(T / hop)]."""
        return self.quantizer.encode(self.encoder(self.pad(wave)), num_quantizers)

    def decode(self, codes: Tensor) -> Tensor:
        """int64 codes [B, Q, T'] -> waveform [B, T' * hop] (any Q up to the model's levels)."""
        return self.decoder(self.quantizer.decode(codes))


class SoundStream(CodecGenerator):
    """SEANet encoder and decoder (convolutions at the sample rate; causal ones stream) around the RVQ.

    Every generator convolution starts with a zero bias (as DAC does). With PyTorch's default bias init
    the signal shrinks layer by layer while each layer adds its bias, so the encoder's latents start as a
    tight blob around a bias-made offset that drifts more per update than the blob is wide: each batch
    then lands on one or two codes (per-level perplexity ~2 of 1024) and almost nothing passes the VQ.
    """

    def __init__(self, sample_rate: int, channels: int, decoder_channels: int, strides: list[int], latent_dim: int,
                 dilations: list[int], kernel_size: int, causal: bool, act: str, num_quantizers: int,
                 codebook_size: int, **vq_kwargs) -> None:
        super().__init__(
            sample_rate, math.prod(strides),
            Encoder(channels, strides, latent_dim, dilations, kernel_size, causal, act),
            ResidualVQ(latent_dim, num_quantizers, codebook_size, **vq_kwargs),
            Decoder(decoder_channels, strides, latent_dim, dilations, kernel_size, causal, act),
        )
