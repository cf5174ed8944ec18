"""The Trainer's numeric precision: ``auto`` takes bf16 autocast only where the hardware computes bf16.

bf16 autocast trains 1.7-2.2x faster than fp32 on a CPU with AMX (benchmarks/cpu_step.py) and on
every recent GPU, but a CPU without bf16 instructions (AVX2-only x86, such as AMD EPYC Milan)
emulates it: measured there, a coarse-LM step ran at 0.031x its fp32 speed. A time-budgeted recipe
would then train 30 times fewer steps without a word, so recipes say ``auto`` and an explicit bf16
precision on such a CPU gets a warning.
"""
from __future__ import annotations

import platform

# Lightning's precision names (lightning.fabric.utilities.types._PRECISION_INPUT), plus our ``auto``.
LIGHTNING_PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed",
                        "bf16-true", "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16")
PRECISIONS = ("auto",) + LIGHTNING_PRECISIONS


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` key lands on a CUDA device here."""
    import torch

    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def cpu_has_native_bf16() -> bool:
    """bf16 matrix instructions on this CPU: AMX or AVX512-BF16 on x86, oneDNN's bf16 path elsewhere (Arm BF16)."""
    import torch

    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        return bool(amx() or avx512_bf16())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(accelerator: str) -> bool:
    """Whether the device ``accelerator`` selects computes bf16 natively (not by emulation)."""
    import torch

    if uses_cuda(accelerator):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def resolve_precision(precision: str, accelerator: str) -> str:
    """The Lightning precision to train with: ``auto`` -> ``bf16-mixed`` where bf16 is native, else ``32-true``."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if native_bf16(accelerator) else "32-true"


def is_bf16(precision: str) -> bool:
    return str(precision).startswith("bf16")
