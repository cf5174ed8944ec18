"""Files the report links to: WAV clips and mel-spectrogram PNGs (PNG written with zlib, no imaging library)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """An 8-bit RGB image [H, W, 3] as PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))  # filter type 0 on every row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit, truecolour, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    return path


def write_spectrogram(path: Path, waves: list[np.ndarray], sample_rate: int, min_width: int = 1000) -> Path:
    """Log-mel panels of ``waves`` stacked top to bottom on one dB scale (see codec ``viz.mel_image``),
    at least ``min_width`` pixels wide (time columns repeated; each mel bin two pixels high)."""
    from soundstage.plugins.codec.viz import mel_image

    n_fft = 1024 if sample_rate >= 16000 else 512
    image = mel_image([torch.from_numpy(np.asarray(w, dtype=np.float32)) for w in waves], sample_rate, n_fft=n_fft, n_mels=80)
    widen = max(1, -(-min_width // image.shape[1]))  # ceil
    image = image.repeat_interleave(widen, dim=1).repeat_interleave(2, dim=0)
    return write_png(path, image.numpy())
