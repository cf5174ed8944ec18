"""Every config value has a valid range, checked when the recipe is read; a batch that cannot fit is refused."""
import subprocess
import sys

import pytest

from soundstage.errors import RecipeError, SoundstageError
from soundstage.memory import check_memory, machine_memory
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner


@pytest.mark.parametrize("override, key, reason", [
    ("stages.codec.config.batch_size=0", "stages.codec.config.batch_size", "must be >= 1, got 0"),
    ("stages.codec.config.segment_seconds=-1", "stages.codec.config.segment_seconds", "must be finite and > 0, got -1.0"),
    ("stages.codec.config.lr=.nan", "stages.codec.config.lr", "must be finite and > 0, got nan"),
    ("stages.codec.config.strides=[2,0,5]", "stages.codec.config.strides", "must be >= 1, got [2, 0, 5]"),
    ("stages.codec.config.augment.prob=2", "stages.codec.config", "augment.prob: a probability in [0, 1]"),
    ("stages.semantic.config.segment_seconds=0", "stages.semantic.config.segment_seconds", "must be finite and > 0"),
    ("stages.semantic_lm.config.model.d_model=0", "stages.semantic_lm.config.model.d_model", "must be >= 1, got 0"),
    ("stages.semantic_lm.config.optim.lr=-0.1", "stages.semantic_lm.config.optim.lr", "must be finite and > 0"),
    ("stages.fine_lm.config.sampling.top_p=1.5", "stages.fine_lm.config.sampling.top_p", "must be within [0, 1]"),
    ("stages.tokens.config.batch_size=-3", "stages.tokens.config.batch_size", "must be >= 1, got -3"),
    ("data.hours=0", "data.hours", "must be finite and > 0, got 0.0"),
    ("data.sample_rate=-16000", "data.sample_rate", "must be finite and > 0"),
    ("data.val_fraction=1.0", "data.val_fraction", "must be within [0, 1), got 1.0"),
    ("data.remote_timeout_s=0", "data.remote_timeout_s", "must be finite and > 0"),
    ("trainer.max_steps=0", "trainer.max_steps", "must be -1 (no limit) or >= 1, got 0"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches", "must be >= 1, got 0"),
    ("stages.codec.trainer.checkpoint_every_n_steps=0", "stages.codec.trainer.checkpoint_every_n_steps", "must be >= 1"),
    ("trainer.ema_decay=1.5", "trainer.ema_decay", "must be within [0, 1]"),
])
def test_out_of_range_values_fail_when_the_recipe_is_read(override, key, reason):
    with pytest.raises(RecipeError) as err:
        load_recipe("speech_tiny", [override])
    message = str(err.value)
    assert f"key '{key}': {reason}" in message and "\n" not in message


def test_an_out_of_range_value_is_one_line_from_the_cli():
    out = subprocess.run([sys.executable, "-m", "soundstage.cli", "recipe", "validate", "speech_tiny",
                          "stages.codec.config.segment_seconds=-1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().endswith("key 'stages.codec.config.segment_seconds': must be finite and > 0, got -1.0")
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_training(tmp_path):
    recipe = load_recipe("speech_tiny", ["stages.codec.config.batch_size=100000000", f"data.cache_dir={tmp_path / 'c'}"])
    with pytest.raises(SoundstageError, match=r"^stages.codec.config.batch_size: one batch \(100000000 x 0.5 s at "
                                              r"16000 Hz: waveform \+ first conv layer\) needs at least .* more than this "
                                              r"machine's .* of memory; lower it$"):
        PipelineRunner(recipe, tmp_path / "run", log=lambda m: None).run(["codec"])
    assert not (tmp_path / "run").exists() and not (tmp_path / "c").exists()  # nothing written, no corpus made


def test_memory_floor_of_every_trained_stage_of_the_shipped_recipes_fits_here():
    for name in ("speech_tiny", "music_tiny", "speech_small"):
        recipe = load_recipe(name)
        check_memory(recipe, list(recipe.stages))  # no error: the defaults are sane
    recipe = load_recipe("speech_tiny")
    with pytest.raises(SoundstageError, match="stages.semantic_lm.config.batch_size: .* tokens x"):
        check_memory(recipe, ["semantic_lm"], limit=1000)
    assert machine_memory() > 0


def test_every_built_in_audio_or_token_stage_has_a_memory_floor_from_its_default_config():
    from soundstage.registry import list_stages

    for name, cls in list_stages().items():
        built_in = not isinstance(cls, Exception) and cls.__module__.startswith("soundstage.plugins.")
        if not built_in or not cls.trainable or name == "toy_regressor":  # the toy's batches are a few floats
            continue
        rows = cls.memory_floor(cls.config_class())
        assert rows and all(key == "batch_size" and need > 0 for key, need, _ in rows), name
