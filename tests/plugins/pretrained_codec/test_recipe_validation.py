"""`recipe validate` with a pretrained codec: config.json is read when the checkpoint is here; otherwise the
recipe's declared numbers are checked against the other stages and the rest is reported as not checked."""
import logging

import pytest

from soundstage.errors import RecipeError
from soundstage.recipe import load_recipe

TINY_ENCODEC = ["shared.codebook_size=64", "shared.num_quantizers=4", "shared.coarse_quantizers=2"]


def test_the_shipped_recipe_validates_without_its_checkpoint(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="soundstage.plugins.pretrained_codec"):
        recipe = load_recipe("speech_tiny_encodec", [f"stages.encodec.config.path={tmp_path / 'not_here'}"])
    assert recipe.stages["encodec"].plugin == "pretrained_codec" and "codec" not in recipe.stages
    assert "is not on this machine: checked the recipe's numbers against the other stages only" in caplog.text
    # the declared numbers still meet the LMs
    with pytest.raises(RecipeError, match=r"stage 'fine_lm' does not match the acoustic tokens of stage 'encodec': levels \(config num_quantizers\): expects 6, gets 8"):
        load_recipe("speech_tiny_encodec", [f"stages.encodec.config.path={tmp_path}/x", "stages.fine_lm.config.num_quantizers=6"])


def test_config_json_is_the_authority_when_here(checkpoints):
    path = f"stages.encodec.config.path={checkpoints['encodec']}"
    recipe = load_recipe("speech_tiny_encodec", [path, *TINY_ENCODEC])
    stream = recipe.stages["encodec"].stage_class.token_streams(recipe.stages["encodec"].config, {})["acoustic"]
    assert (stream.vocab_size, stream.levels, stream.frame_rate) == (64, 4, 75.0)
    with pytest.raises(RecipeError, match=r"stages.encodec: config.codebook_size=1024 but .*config.json\) declares 64"):
        load_recipe("speech_tiny_encodec", [path])
    with pytest.raises(RecipeError, match=r"stages.encodec: config.codec_sample_rate=16000 but .* declares 24000"):
        load_recipe("speech_tiny_encodec", [path, *TINY_ENCODEC, "stages.encodec.config.codec_sample_rate=16000"])
    # undeclared numbers come from config.json and still meet the LMs
    with pytest.raises(RecipeError, match=r"stage 'coarse_lm' does not match the acoustic tokens of stage 'encodec': frame_rate \(config acoustic_rate\): expects 50, gets 75"):
        load_recipe("speech_tiny_encodec", [path, *TINY_ENCODEC, "stages.encodec.config.frame_rate=null", "shared.acoustic_rate=50"])


def test_a_directory_that_is_here_must_be_a_codec(checkpoints, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "wav2vec2"}')
    with pytest.raises(RecipeError, match=r"stages.encodec: config.path: .* holds a 'wav2vec2' checkpoint, not a codec"):
        load_recipe("speech_tiny_encodec", [f"stages.encodec.config.path={tmp_path}"])
    config_only = _config_only(checkpoints["encodec"], tmp_path / "config_only")
    with pytest.raises(RecipeError, match=r"stages.encodec: config.path: .* has no weights"):
        load_recipe("speech_tiny_encodec", [f"stages.encodec.config.path={config_only}"])


def test_mimi_semantic_rates_meet_the_lms(checkpoints):
    overrides = ["stages.semantic=null", "stages.tokens.needs=[encodec,mimi]", "stages.samples.needs=[encodec,mimi,semantic_lm,coarse_lm,fine_lm]",
                 "stages.mimi.plugin=mimi_semantic", f"stages.mimi.config.path={checkpoints['mimi']}",
                 "stages.mimi.config.sample_rate=${shared.sample_rate}", f"stages.encodec.config.path={checkpoints['encodec']}",
                 *TINY_ENCODEC, "shared.semantic_vocab=64"]
    with pytest.raises(RecipeError, match=r"stage 'semantic_lm' does not match the semantic tokens of stage 'mimi': frame_rate \(config semantic_rate\): expects 25, gets 12.5"):
        load_recipe("speech_tiny_encodec", overrides)
    recipe = load_recipe("speech_tiny_encodec", overrides + ["shared.semantic_rate=12.5"])
    stream = recipe.stages["mimi"].stage_class.token_streams(recipe.stages["mimi"].config, {})["semantic"]
    assert (stream.vocab_size, stream.frame_rate) == (64, 12.5)


def _config_only(src, dest):
    dest.mkdir()
    (dest / "config.json").write_text((src / "config.json").read_text())
    return dest
