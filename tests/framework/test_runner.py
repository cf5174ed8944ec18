"""The pipeline runner on the two-stage toy recipe: train, skip, change detection, kill + resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.runner import PipelineRunner
from soundstage.recipe import load_recipe
from soundstage.stage import Stage

QUIET = ["trainer.enable_progress_bar=false", "trainer.max_steps=20", "stages.second.trainer.max_steps=10"]


def test_runs_both_stages_then_skips_them(tmp_path):
    run_dir = tmp_path / "run"
    results = PipelineRunner(load_recipe("toy", QUIET), run_dir, log=lambda m: None).run()
    assert [r.status for r in results] == ["trained", "trained"]
    for stage in ("first", "second"):
        d = run_dir / stage
        assert (d / "checkpoints" / "last.ckpt").is_file()
        assert list((d / "tb").glob("events.out.tfevents.*"))
        assert (d / "recipe.yaml").is_file()
        done = json.loads((d / "done.json").read_text())
        assert done["plugin"] == "toy_regressor" and done["checkpoint"] == "model.safetensors"
    # the exported model loads without the recipe and predicts like the trained one
    model = Stage.load_pretrained(run_dir / "second" / "model.safetensors")
    assert model.config.init_from_upstream and model.config.frequency == 1.5
    again = PipelineRunner(load_recipe("toy", QUIET), run_dir, log=lambda m: None).run()
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_changed_config_of_done_stage_is_an_error_then_restart(tmp_path):
    run_dir = tmp_path / "run"
    PipelineRunner(load_recipe("toy", QUIET), run_dir, log=lambda m: None).run(["first"])
    changed = load_recipe("toy", QUIET + ["stages.first.config.frequency=3.0"])
    with pytest.raises(SoundstageError, match=r"stale: first \(config keys changed: frequency\); retrain them with --restart first"):
        PipelineRunner(changed, run_dir, log=lambda m: None).run(["first"])
    results = PipelineRunner(changed, run_dir, log=lambda m: None).run(["first"], restart=["first"])
    assert results[0].status == "trained"


def test_selected_stage_needs_done_dependencies(tmp_path):
    with pytest.raises(SoundstageError, match=r"stage 'second' needs \['first'\], which are not done"):
        PipelineRunner(load_recipe("toy", QUIET), tmp_path / "run", log=lambda m: None).run(["second"])


def test_stage_can_reuse_an_existing_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    PipelineRunner(load_recipe("toy", QUIET), run_dir, log=lambda m: None).run(["first"])
    exported = run_dir / "first" / "model.safetensors"
    reuse = load_recipe("toy", QUIET + [f"stages.first.checkpoint={exported}"])
    results = PipelineRunner(reuse, tmp_path / "other", log=lambda m: None).run()
    assert [r.status for r in results] == ["reused-checkpoint", "trained"]


def _soundstage(*args: str) -> list[str]:
    return [sys.executable, "-m", "soundstage.cli", *args]


def test_sigkill_mid_stage_resumes_from_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = _soundstage(
        "run", "toy", "--run-dir", str(run_dir), "--stages", "first",
        "trainer.enable_progress_bar=false", "trainer.max_steps=60", "trainer.checkpoint_every_n_steps=5",
        "stages.first.config.step_delay_s=0.05",
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    last = run_dir / "first" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "first" / "done.json").exists()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < killed_at < 60

    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming from" in out.stdout and "first=resumed" in out.stdout
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 60
    assert (run_dir / "first" / "done.json").exists()


def test_ema_weights_are_exported(tmp_path):
    base = QUIET
    plain = PipelineRunner(load_recipe("toy", base), tmp_path / "plain", log=lambda m: None)
    plain.run(["first"])
    ema = PipelineRunner(load_recipe("toy", base + ["trainer.ema_decay=0.5"]), tmp_path / "ema", log=lambda m: None)
    ema.run(["first"])
    again = PipelineRunner(load_recipe("toy", base), tmp_path / "plain2", log=lambda m: None)
    again.run(["first"])
    a = Stage.load_pretrained(tmp_path / "plain" / "first" / "model.safetensors").net[0].weight
    a2 = Stage.load_pretrained(tmp_path / "plain2" / "first" / "model.safetensors").net[0].weight
    b = Stage.load_pretrained(tmp_path / "ema" / "first" / "model.safetensors").net[0].weight
    assert torch.equal(a, a2)  # training is reproducible for a seed ...
    assert not torch.equal(a, b)  # ... so the difference is the averaging


def test_output_paths_are_stored_relative_to_the_stage_whether_the_run_dir_was_given_absolute_or_relative(
        tmp_path, monkeypatch):
    """A run dir given as a relative path (``--run-dir runs/x``) must not leave cwd-relative paths in the
    done markers: the run dir would break when used from another directory or copied elsewhere."""
    from soundstage.output_paths import absolute_outputs, portable_outputs

    stage_dir = tmp_path / "runs" / "x" / "tokens"
    monkeypatch.chdir(tmp_path)
    outputs = {"train": "runs/x/tokens/shards/train", "val": str(stage_dir / "shards" / "val"),
               "elsewhere": "data/corpus", "name": "speech", "rate": 50.0}
    stored = portable_outputs(outputs, stage_dir)
    assert stored == {"train": "./shards/train", "val": "./shards/val", "elsewhere": "data/corpus",
                      "name": "speech", "rate": 50.0}
    moved = tmp_path / "moved" / "tokens"
    assert absolute_outputs(stored, moved)["train"] == str(moved / "shards" / "train")
