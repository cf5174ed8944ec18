"""The README's main job at an even smaller size: every stage of speech_tiny for a few steps,
then export -> load -> generate from the bundle alone."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from soundstage.plugins.audiolm.pipeline import Pipeline
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

FEW_STEPS = [
    "data.hours=0.01",
    "data.val_fraction=0.3",
    "trainer.enable_progress_bar=false",
    "trainer.limit_val_batches=1",
    "trainer.checkpoint_every_n_steps=1000",
    "stages.codec.config.batches_per_epoch=4",
    "stages.codec.trainer.max_steps=6",
    "stages.semantic.config.init_batches=1",
    "stages.semantic.config.batches_per_epoch=3",
    "stages.semantic.trainer.max_steps=3",
    "stages.semantic_lm.trainer.max_steps=3",
    "stages.coarse_lm.trainer.max_steps=3",
    "stages.fine_lm.trainer.max_steps=3",
    "stages.samples.config.num_prompts=1",
    "stages.samples.config.prompt_seconds=1.0",
    "stages.samples.config.continue_seconds=1.0",
    "stages.samples.config.unconditional_seconds=1.0",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_tiny")
    recipe = load_recipe("speech_tiny", FEW_STEPS + [f"data.cache_dir={root / 'corpora'}"])
    results = PipelineRunner(recipe, root / "run", log=lambda m: None).run()
    return root, results


@pytest.mark.slow
def test_every_stage_runs_and_writes_a_continuation(tiny_run):
    root, results = tiny_run
    assert [r.name for r in results] == ["codec", "semantic", "tokens", "semantic_lm", "coarse_lm", "fine_lm", "samples"]
    samples = json.loads((root / "run" / "samples" / "samples.json").read_text())
    cont = next(s for s in samples["samples"] if s["kind"] == "continuation")
    wave, sr = sf.read(root / "run" / "samples" / cont["file"])
    assert sr == 16000
    assert abs(len(wave) / sr - 2.0) < 0.1  # 1 s prompt + 1 s continuation
    assert np.abs(wave).max() > 1e-3 and np.isfinite(wave).all()  # not silent


@pytest.mark.slow
def test_a_copied_run_directory_hands_on_its_own_files(tiny_run, tmp_path):
    """Copied elsewhere (another disk or machine) with the original gone, every stage is still done
    and the token shards the LMs read are the copy's."""
    root, _ = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(root / "run", copy)
    away = root / "run-away"
    shutil.move(root / "run", away)
    try:
        recipe = load_recipe("speech_tiny", FEW_STEPS + [f"data.cache_dir={root / 'corpora'}"])
        runner = PipelineRunner(recipe, copy, log=lambda m: None)
        assert {r.status for r in runner.run()} == {"skipped"}
        assert runner.record("tokens").outputs["train_tokens"].startswith(str(copy))
    finally:
        shutil.move(away, root / "run")


@pytest.mark.slow
def test_export_load_generate_round_trip(tiny_run, tmp_path):
    root, _ = tiny_run
    bundle = tmp_path / "bundle"
    out = subprocess.run([sys.executable, "-m", "soundstage.cli", "export", str(root / "run"), str(bundle)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert set(manifest["roles"]) == {"semantic_tokenizer", "codec", "semantic_lm", "coarse_lm", "fine_lm"}
    assert "## Evaluation" in (bundle / "README.md").read_text()
    moved = tmp_path / "elsewhere"
    shutil.move(str(bundle), moved)
    shutil.rmtree(root / "run" / "codec")  # the bundle must not need the run directory

    pipe = Pipeline.load(moved)
    a = pipe.generate(0.5, batch=2, seed=3)
    b = pipe.generate(0.5, batch=2, seed=3)
    assert a.shape[0] == 2 and torch.equal(a, b)  # seeded generation is reproducible

    prompt = np.sin(np.linspace(0, 600, 44100)).astype(np.float32) * 0.3
    stereo = np.stack([prompt, prompt * 0.5], axis=1)  # stereo at 44.1 kHz: downmixed and resampled
    sf.write(tmp_path / "prompt.wav", stereo, 44100)
    out = subprocess.run(
        [sys.executable, "-m", "soundstage.cli", "generate", str(moved), "--prompt", str(tmp_path / "prompt.wav"),
         "--seconds", "0.5", "--out", str(tmp_path / "cont.wav"), "--seed", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    wave, sr = sf.read(tmp_path / "cont.wav")
    assert sr == 16000 and abs(len(wave) / sr - 1.5) < 0.1

    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    out = subprocess.run(
        [sys.executable, "-m", "soundstage.cli", "generate", str(moved), "--prompt", str(tmp_path / "silent.wav"),
         "--seconds", "0.5", "--out", str(tmp_path / "x.wav")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2 and "prompt audio is unusable (all-zero" in out.stderr
