"""Faults during training: SIGTERM (preemption), a full disk while checkpointing, NaN losses."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import lightning as L
import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.registry import register_stage
from soundstage.stage import Stage, StageConfig

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _run_args(run_dir, *extra):
    return [
        sys.executable, "-m", "soundstage.cli", "run", "toy", "--run-dir", str(run_dir), "--stages", "first",
        "trainer.enable_progress_bar=false", "trainer.max_steps=80", "trainer.checkpoint_every_n_steps=1000",
        "stages.first.config.step_delay_s=0.05", *extra,
    ]


def test_sigterm_saves_a_checkpoint_and_exit_code_143_then_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_run_args(run_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, text=True)
    tb = run_dir / "first" / "tb"
    deadline = time.monotonic() + 120
    while not list(tb.glob("events.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # some steps in, well before the first periodic checkpoint (every 1000 steps)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert "received SIGTERM" in out
    last = run_dir / "first" / "checkpoints" / "last.ckpt"
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < step < 80
    again = subprocess.run(_run_args(run_dir), capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "first=resumed" in again.stdout
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 80


def test_disk_full_while_checkpointing_keeps_previous_checkpoint(tmp_path):
    """A file-size limit makes the next checkpoint write fail part-way; last.ckpt must stay loadable."""
    run_dir = tmp_path / "run"
    subprocess.run(_run_args(run_dir, "trainer.max_steps=10", "stages.first.config.step_delay_s=0"), check=True,
                   capture_output=True, env=ENV, timeout=300)
    last = run_dir / "first" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    script = f"""
import resource, signal, sys
import lightning as L, torch
from soundstage.plugins.toy.stage import ToyRegressorConfig, ToyRegressorStage
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
model = ToyRegressorStage(ToyRegressorConfig(hidden=512))  # a bigger checkpoint than the limit
trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_checkpointing=False)
trainer.strategy.connect(model)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    trainer.save_checkpoint({str(last)!r})
except OSError as exc:
    print("write failed:", exc)
    sys.exit(0)
sys.exit("the write unexpectedly succeeded")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "write failed" in out.stdout
    assert last.read_bytes() == before
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 10
    assert not [p for p in last.parent.iterdir() if p.name.startswith(".") or "tmp" in p.name]


@dataclass
class _NanCfg(StageConfig):
    nan_from_step: int = 3


@register_stage("nan_probe")
class _NanStage(Stage):
    config_class = _NanCfg

    def __init__(self, config):
        super().__init__(config)
        self.w = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        loss = (self.w * batch[0]).pow(2).mean()
        return loss * float("nan") if self.global_step >= self.config.nan_from_step else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(64, 1)), batch_size=4)


def test_nan_loss_skips_steps_then_stops_with_a_clear_message(tmp_path):
    stage = _NanStage(_NanCfg(nan_from_step=3))
    trainer = L.Trainer(max_steps=50, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(SoundstageError, match=r"NaN/inf for 5 steps in a row \(last at step 7\)"):
        trainer.fit(stage, _loader())
    assert stage.nonfinite_steps == 5
    assert torch.isfinite(stage.w).all()  # skipped steps never touched the weights


def test_isolated_nan_steps_are_skipped_and_counted(tmp_path):
    class Sometimes(_NanStage):
        def training_step(self, batch, batch_idx):
            loss = (self.w * batch[0]).pow(2).mean()
            return loss * float("nan") if batch_idx % 4 == 1 else loss

    stage = Sometimes(_NanCfg())
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(stage, _loader())
    assert stage.nonfinite_steps == 4 and trainer.global_step == 16  # skipped steps still count toward max_steps
    assert torch.isfinite(stage.w).all()


def test_truncated_last_ckpt_on_resume_is_one_line_naming_restart(tmp_path, capsys):
    from soundstage.cli import main

    done_run, run = tmp_path / "done", tmp_path / "run"
    args = ["trainer.enable_progress_bar=false", "trainer.max_steps=3"]
    assert main(["run", "toy", "--run-dir", str(done_run), "--stages", "first", *args]) == 0
    whole = (done_run / "first" / "checkpoints" / "last.ckpt").read_bytes()
    cut = run / "first" / "checkpoints" / "last.ckpt"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(whole[: len(whole) // 2])  # what a crash in the middle of a non-atomic copy leaves
    (run / "first" / "started.json").write_bytes((done_run / "first" / "started.json").read_bytes())
    capsys.readouterr()
    assert main(["run", "toy", "--run-dir", str(run), "--stages", "first", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume from this checkpoint (truncated or corrupt" in err[0]
    assert err[0].endswith("--restart first trains the stage from scratch")
    assert main(["run", "toy", "--run-dir", str(run), "--stages", "first", "--restart", "first", *args]) == 0


def test_a_checkpoint_write_failing_on_a_file_size_limit_is_one_line(tmp_path):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # the checkpoint of a 1024-wide MLP is larger

    out = subprocess.run(_run_args(tmp_path / "run", "trainer.max_steps=10", "trainer.checkpoint_every_n_steps=5",
                                   "stages.first.config.step_delay_s=0", "stages.first.config.hidden=1024"),
                         capture_output=True, text=True, env=ENV, timeout=300, preexec_fn=limit)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: stage 'first' stopped at step 5: File too large") and "run the same command again" in last
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "first" / "done.json").exists()
