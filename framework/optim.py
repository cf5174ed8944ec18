"""AdamW as every stage builds it: torch's fused kernel where torch would otherwise loop per parameter."""
from __future__ import annotations

from typing import Any, Iterable

import torch


def adamw(params: Iterable[Any], **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)``, fused when every parameter is a CPU tensor.

    On the CPU torch's default is a Python loop over the parameters; the fused kernel takes the
    codec's AdamW step (13M parameters, two cores) from 31 to 10 ms, 8% of its update
    (``benchmarks/cpu_step.py``). On accelerators torch's own default (``foreach``) is kept, so sharded
    or distributed tensor types keep the path they are tested with. ``params`` may be tensors or groups.
    """
    groups = [{**g, "params": list(g["params"])} if isinstance(g, dict) else g for g in params]
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    if "fused" not in kwargs and "foreach" not in kwargs and tensors \
            and all(type(p) in (torch.Tensor, torch.nn.Parameter) and p.device.type == "cpu" for p in tensors):
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)
