"""``trainer.precision: auto``: bf16 autocast only where the device computes bf16, and a warning for emulated bf16."""
import pytest

from soundstage import precision
from soundstage.trainer import TrainerConfig, build_trainer


def test_explicit_precisions_pass_through():
    for name in ("32-true", "bf16-mixed", "16-mixed"):
        assert precision.resolve_precision(name, "cpu") == name


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_bf16_exactly_where_the_cpu_has_bf16_instructions(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_precision("auto", "cpu") == ("bf16-mixed" if native else "32-true")


def test_this_cpus_answer_matches_its_instruction_flags():
    import platform

    import torch

    if platform.machine() != "x86_64":
        pytest.skip("the flags read here are x86's")
    flags = open("/proc/cpuinfo").read().split()
    assert precision.cpu_has_native_bf16() == ("amx_tile" in flags or "avx512_bf16" in flags)
    assert precision.resolve_precision("auto", "cpu") == ("bf16-mixed" if precision.cpu_has_native_bf16() else "32-true")
    assert not torch.cuda.is_available() or precision.uses_cuda("auto")


def test_the_trainer_gets_the_resolved_precision_and_emulated_bf16_warns(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    trainer = build_trainer(TrainerConfig(accelerator="cpu", precision="auto", enable_progress_bar=False), tmp_path / "a")
    assert trainer.precision == "32-true"
    with pytest.warns(UserWarning, match=r"stage 'b': trainer.precision bf16-mixed on a CPU without bf16 instructions"):
        trainer = build_trainer(TrainerConfig(accelerator="cpu", precision="bf16-mixed", enable_progress_bar=False), tmp_path / "b")
    assert trainer.precision == "bf16-mixed"
