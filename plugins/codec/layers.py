"""Weight-normalised convolutions (``w = g * v / |v|``, norm over all dims but the first).

Written out instead of ``torch.nn.utils.parametrizations.weight_norm`` because parametrized modules
cannot be pickled, which ``ddp_spawn`` and some launchers need.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class _WeightNorm:
    """Mixin: replaces a conv's ``weight`` parameter by ``weight_g`` (norms) and ``weight_v`` (directions)."""

    def _init_weight_norm(self) -> None:
        w = self.weight.detach().clone()
        del self.weight
        self.weight_v = nn.Parameter(w)
        self.weight_g = nn.Parameter(self._norm(w))

    @staticmethod
    def _norm(w: Tensor) -> Tensor:
        return w.flatten(1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))

    def normed_weight(self) -> Tensor:
        return self.weight_v * (self.weight_g / self._norm(self.weight_v))


class WNConv1d(_WeightNorm, nn.Conv1d):
    """``nn.Conv1d`` with weight normalisation."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConv2d(_WeightNorm, nn.Conv2d):
    """``nn.Conv2d`` with weight normalisation."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.normed_weight(), self.bias)


class WNConvTranspose1d(_WeightNorm, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with weight normalisation (no output_size argument)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(x, self.normed_weight(), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
