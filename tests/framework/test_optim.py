"""The stages' AdamW: fused on the CPU, the same updates as torch's per-parameter loop."""
from __future__ import annotations

import torch

from soundstage.optim import adamw


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


def _train(opt_factory, steps: int = 5) -> list[torch.Tensor]:
    model = _model()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = opt_factory([{"params": iter(decay), "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}])
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt


def test_cpu_parameters_get_the_fused_kernel_with_the_loops_updates():
    fused, opt = _train(lambda groups: adamw(groups, lr=1e-2, betas=(0.8, 0.99)))
    assert opt.defaults["fused"] is True
    loop, ref = _train(lambda groups: torch.optim.AdamW(groups, lr=1e-2, betas=(0.8, 0.99), foreach=False))
    assert not ref.defaults["fused"]
    assert len(opt.param_groups[0]["params"]) == 2  # a generator of parameters is kept, not consumed
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_explicit_choice_is_kept():
    opt = adamw(_model().parameters(), lr=1e-3, foreach=False)
    assert not opt.defaults["fused"] and opt.defaults["foreach"] is False
