"""A tiny AudioLM pipeline with each family as the codec (Mimi also as the semantic tokenizer): tokenize,
the three LMs for a few steps, samples, then export -> load -> generate from the bundle alone, and the
codec figures eval computes."""
import json
import shutil

import numpy as np
import pytest
import torch
from tiny_codecs import FACTS, FAMILIES

from soundstage.errors import SoundstageError
from soundstage.plugins.audiolm.export import export_bundle
from soundstage.plugins.audiolm.pipeline import Pipeline
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

FEW_STEPS = [
    "data.hours=0.01", "data.val_fraction=0.3", "trainer.enable_progress_bar=false", "trainer.limit_val_batches=1",
    "trainer.checkpoint_every_n_steps=1000", "stages.semantic.config.init_batches=1",
    "stages.semantic.config.batches_per_epoch=3", "stages.semantic.trainer.max_steps=3",
    "stages.semantic_lm.trainer.max_steps=3", "stages.coarse_lm.trainer.max_steps=3", "stages.fine_lm.trainer.max_steps=3",
    "stages.samples.config.num_prompts=1", "stages.samples.config.prompt_seconds=1.0",
    "stages.samples.config.continue_seconds=1.0", "stages.samples.config.unconditional_seconds=1.0",
]
# Mimi's first codebook as the semantic tokens (12.5 Hz), in place of k-means on MFCCs
MIMI_SEMANTIC = [
    "stages.semantic=null", "stages.mimi_semantic.plugin=mimi_semantic", "stages.mimi_semantic.config.sample_rate=${shared.sample_rate}",
    "stages.tokens.needs=[encodec,mimi_semantic]", "stages.samples.needs=[encodec,mimi_semantic,semantic_lm,coarse_lm,fine_lm]",
    "shared.semantic_rate=12.5", "shared.semantic_vocab=64",
]


def recipe_overrides(family, path, cache_dir, copy_weights=True):
    sample_rate, frame_rate, codebook, levels = FACTS[family]
    overrides = [*FEW_STEPS, f"data.cache_dir={cache_dir}", f"stages.encodec.config.path={path}",
                 f"stages.encodec.config.copy_weights={str(copy_weights).lower()}",
                 f"stages.encodec.config.codec_sample_rate={sample_rate}", f"shared.acoustic_rate={frame_rate}",
                 f"shared.codebook_size={codebook}", f"shared.num_quantizers={levels}", "shared.coarse_quantizers=2"]
    if family == "mimi":
        overrides = [o for o in overrides if not o.startswith("stages.semantic.")]
        overrides += MIMI_SEMANTIC + [f"stages.mimi_semantic.config.path={path}"]
    return overrides


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    return tmp_path_factory.mktemp("corpora")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_pipeline_with_a_pretrained_codec(checkpoints, corpora, family, tmp_path):
    codec_dir = shutil.copytree(checkpoints[family], tmp_path / "checkpoint")
    recipe = load_recipe("speech_tiny_encodec", recipe_overrides(family, codec_dir, corpora))
    results = PipelineRunner(recipe, tmp_path / "run", log=lambda m: None).run()
    semantic = "mimi_semantic" if family == "mimi" else "semantic"
    assert {r.name for r in results} == {semantic, "encodec", "tokens", "semantic_lm", "coarse_lm", "fine_lm", "samples"}
    assert next(r for r in results if r.name == "encodec").status == "ran"
    done = json.loads((tmp_path / "run" / "encodec" / "done.json").read_text())
    sample_rate, frame_rate, codebook, levels = FACTS[family]
    assert done["checkpoint"] == "model.safetensors" and done["outputs"]["checkpoint"]["model_type"] == family
    assert (done["outputs"]["frame_rate"], done["outputs"]["num_quantizers"]) == (frame_rate, levels)

    streams = json.loads((tmp_path / "run" / "tokens" / "done.json").read_text())["outputs"]["streams"]
    acoustic = streams["acoustic"]
    assert (acoustic["frame_rate"], acoustic["vocab_size"], acoustic["levels"]) == (frame_rate, codebook, levels)
    if family == "mimi":
        assert (streams["semantic"]["frame_rate"], streams["semantic"]["vocab_size"]) == (12.5, codebook)

    pipe = Pipeline.load(tmp_path / "run")
    assert pipe.sample_rate == 16000 and pipe.models["codec"].frame_rate == frame_rate
    wave = pipe.generate(1.0, batch=2, seed=0)
    assert wave.shape[0] == 2 and abs(wave.shape[1] / 16000 - 1.0) < 0.2 and torch.isfinite(wave).all()
    prompt = np.sin(np.linspace(0, 900, 24000)).astype(np.float32) * 0.3  # 1 s at 24 kHz: resampled to 16 kHz
    cont = pipe.continue_audio(prompt, seconds=0.5, sample_rate=24000, seed=0)
    assert abs(cont.shape[-1] / 16000 - 1.5) < 0.2

    _codec_figures_eval_would_compute(pipe)

    bundle = export_bundle(tmp_path / "run", tmp_path / "bundle")
    shutil.rmtree(codec_dir)  # copy_weights (the default): the bundle carries the checkpoint
    shutil.rmtree(tmp_path / "run")
    again = Pipeline.load(bundle)
    assert torch.equal(again.generate(1.0, batch=2, seed=0), wave)


def _codec_figures_eval_would_compute(pipe):
    from soundstage.plugins.audiolm.evaluation.codec_eval import codec_metrics
    from soundstage.plugins.audiolm.evaluation.phone_eval import semantic_phone_metrics
    from soundstage.data.utterances import Utterance

    t = np.arange(16000) / 16000
    utterances = [Utterance("tone", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                            {"phonemes": [{"phoneme": "a", "start": 0.0, "end": 0.5}, {"phoneme": "b", "start": 0.5, "end": 1.0}]})]
    figures = codec_metrics(pipe.models["codec"], utterances)
    assert np.isfinite(figures["si_snr_db"]) and figures["bitrate_bps"] > 0
    assert semantic_phone_metrics(pipe.models["semantic_tokenizer"], utterances)["utterances"] == 1


@pytest.mark.slow
def test_a_bundle_that_records_the_path_needs_it(checkpoints, corpora, tmp_path):
    codec_dir = shutil.copytree(checkpoints["dac"], tmp_path / "checkpoint")
    overrides = recipe_overrides("dac", codec_dir, corpora, copy_weights=False)
    PipelineRunner(load_recipe("speech_tiny_encodec", overrides), tmp_path / "run", log=lambda m: None).run(
        stages=["semantic", "encodec", "tokens", "semantic_lm", "coarse_lm", "fine_lm"])
    bundle = export_bundle(tmp_path / "run", tmp_path / "bundle")
    assert (bundle / "encodec.safetensors").stat().st_size < 20_000  # the config and the path only
    Pipeline.load(bundle)
    shutil.rmtree(codec_dir)
    with pytest.raises(SoundstageError) as err:
        Pipeline.load(bundle)
    assert "config.path" in str(err.value) and "does not exist" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_soundstorm_with_a_pretrained_codec(checkpoints, corpora, tmp_path):
    """SoundStorm as the acoustic generator over EnCodec's codes (resampled 16 -> 24 kHz)."""
    sample_rate, frame_rate, codebook, levels = FACTS["encodec"]
    overrides = [
        "data.hours=0.01", "data.val_fraction=0.3", f"data.cache_dir={corpora}", "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=1", "trainer.checkpoint_every_n_steps=1000",
        "stages.codec=null", "stages.encodec.plugin=pretrained_codec", f"stages.encodec.config.path={checkpoints['encodec']}",
        "stages.encodec.config.sample_rate=${shared.sample_rate}", "stages.encodec.config.num_quantizers=${shared.num_quantizers}",
        "stages.tokens.needs=[encodec,semantic]", "stages.samples.needs=[encodec,semantic,semantic_lm,soundstorm]",
        f"shared.acoustic_rate={frame_rate}", f"shared.codebook_size={codebook}", f"shared.num_quantizers={levels}",
        "stages.semantic.config.init_batches=1", "stages.semantic.config.batches_per_epoch=3", "stages.semantic.trainer.max_steps=3",
        "stages.semantic_lm.trainer.max_steps=3", "stages.soundstorm.trainer.max_steps=3",
    ]
    recipe = load_recipe("speech_tiny_soundstorm", overrides)
    PipelineRunner(recipe, tmp_path / "run", log=lambda m: None).run(
        stages=["semantic", "encodec", "tokens", "semantic_lm", "soundstorm"])
    pipe = Pipeline.load(tmp_path / "run", acoustic="soundstorm")
    wave = pipe.generate(1.0, batch=1, seed=0)
    assert abs(wave.shape[-1] / 16000 - 1.0) < 0.2 and torch.isfinite(wave).all()


@pytest.mark.slow
@pytest.mark.parametrize("copy_weights", [True, False])
def test_what_the_codec_stage_hands_on(checkpoints, corpora, tmp_path, copy_weights):
    """Recording the path: the directory's files are part of the stage's product, so changing them makes
    the stages after it stale. Copying: the run keeps its snapshot whatever happens to the directory."""
    from tiny_codecs import tiny_model

    codec_dir = shutil.copytree(checkpoints["dac"], tmp_path / "checkpoint")
    runner = PipelineRunner(load_recipe("speech_tiny_encodec", recipe_overrides("dac", codec_dir, corpora, copy_weights)),
                            tmp_path / "run", log=lambda m: None)
    runner.run(stages=["encodec"])
    before = runner.product("encodec")
    tiny_model("dac", seed=1).save_pretrained(codec_dir, safe_serialization=True)
    assert (runner.product("encodec") != before) is not copy_weights
