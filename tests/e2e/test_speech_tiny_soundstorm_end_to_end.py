"""speech_tiny_soundstorm at an even smaller size: every stage for a few steps with SoundStorm as the
acoustic generator, then export -> load -> generate (CLI and Python) from the bundle alone."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from soundstage.plugins.audiolm.pipeline import Pipeline
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

from test_speech_tiny_end_to_end import FEW_STEPS

FEW_STEPS_SOUNDSTORM = [o for o in FEW_STEPS if not o.startswith(("stages.coarse_lm", "stages.fine_lm"))] + [
    "stages.soundstorm.trainer.max_steps=3",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_tiny_soundstorm")
    recipe = load_recipe("speech_tiny_soundstorm", FEW_STEPS_SOUNDSTORM + [f"data.cache_dir={root / 'corpora'}"])
    results = PipelineRunner(recipe, root / "run", log=lambda m: None).run()
    return root, results


@pytest.mark.slow
def test_every_stage_runs_and_the_samples_come_from_soundstorm(tiny_run):
    root, results = tiny_run
    assert [r.name for r in results] == ["codec", "semantic", "tokens", "semantic_lm", "soundstorm", "samples"]
    samples = json.loads((root / "run" / "samples" / "samples.json").read_text())
    cont = next(s for s in samples["samples"] if s["kind"] == "continuation")
    wave, sr = sf.read(root / "run" / "samples" / cont["file"])
    assert sr == 16000 and abs(len(wave) / sr - 2.0) < 0.1  # 1 s prompt + 1 s continuation
    assert np.isfinite(wave).all()


@pytest.mark.slow
def test_export_load_generate_round_trip(tiny_run, tmp_path):
    root, _ = tiny_run
    bundle = tmp_path / "bundle"
    out = subprocess.run([sys.executable, "-m", "soundstage.cli", "export", str(root / "run"), str(bundle)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert set(manifest["roles"]) == {"semantic_tokenizer", "codec", "semantic_lm", "soundstorm"}

    pipe = Pipeline.load(bundle)
    assert pipe.generator.soundstorm is not None and pipe.generator.num_quantizers == 4
    a, b = pipe.generate(0.5, batch=2, seed=3), pipe.generate(0.5, batch=2, seed=3)
    assert a.shape[0] == 2 and torch.equal(a, b)  # seeded generation is reproducible
    ids = torch.randint(0, 64, (2, 50))
    prompt = torch.from_numpy(np.sin(np.linspace(0, 300, 16000)).astype(np.float32) * 0.3).repeat(2, 1)
    assert pipe.from_semantic(ids, seed=0, prompt=prompt).shape == (2, 2 * 16000)
    with pytest.raises(Exception, match="no finished coarse_fine"):
        Pipeline.load(bundle, acoustic="coarse_fine")

    sf.write(tmp_path / "prompt.wav", prompt[0].numpy(), 16000)
    out = subprocess.run(
        [sys.executable, "-m", "soundstage.cli", "generate", str(bundle), "--prompt", str(tmp_path / "prompt.wav"),
         "--seconds", "0.5", "--out", str(tmp_path / "cont.wav"), "--seed", "0", "--soundstorm-temperature", "0.7"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    wave, sr = sf.read(tmp_path / "cont.wav")
    assert sr == 16000 and abs(len(wave) / sr - 1.5) < 0.1
