"""Bad checkpoints and contradicting numbers: one-line errors that name the key."""
import json
import shutil

import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.plugins.pretrained_codec.semantic_stage import MimiSemanticConfig, MimiSemanticStage
from soundstage.plugins.pretrained_codec.stage import PretrainedCodecConfig, PretrainedCodecStage


def fails(match, path, stage=PretrainedCodecStage, config=PretrainedCodecConfig, **overrides):
    with pytest.raises(SoundstageError, match=match) as err:
        stage(config(path=str(path), **overrides))
    assert "\n" not in str(err.value) and "config." in str(err.value)
    return str(err.value)


def test_missing_directory_and_files(checkpoints, tmp_path):
    fails(r"config.path: .*nope does not exist", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    fails(r"config.path: .*empty is not a transformers checkpoint \(no config.json\)", tmp_path / "empty")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(checkpoints["dac"] / "config.json", no_weights)
    fails(r"config.path: .*no_weights has no weights \(no \*.safetensors file\)", no_weights)
    (tmp_path / "file").write_text("x")
    fails(r"config.path: .*file is a file", tmp_path / "file")


def test_a_pickle_only_checkpoint_is_refused_unread(checkpoints, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(checkpoints["encodec"] / "config.json", pickled)
    torch.save({"weights": torch.zeros(1)}, pickled / "pytorch_model.bin")
    fails(r"holds only pickled weights \(pytorch_model.bin\); soundstage loads safetensors only", pickled)


def test_a_directory_of_another_model_type(checkpoints, tmp_path):
    import transformers

    other = tmp_path / "hubert"
    transformers.HubertModel(transformers.HubertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                       intermediate_size=8, conv_dim=(8,), conv_stride=(5,),
                                                       conv_kernel=(10,), num_conv_pos_embeddings=4,
                                                       num_conv_pos_embedding_groups=2)).save_pretrained(other)
    message = fails(r"holds a 'hubert' checkpoint, not a codec \(supported: EnCodec \('encodec'\), DAC", other)
    assert message.startswith("pretrained_codec: config.path:")
    fails(r"mimi_semantic needs a 'mimi' checkpoint, got EnCodec", checkpoints["encodec"], MimiSemanticStage,
          MimiSemanticConfig)


def test_numbers_that_contradict_the_checkpoint(checkpoints):
    fails(r"config.codec_sample_rate=16000 but .*config.json\) declares 24000", checkpoints["encodec"], codec_sample_rate=16000)
    fails(r"config.frame_rate=50.0 but .* declares 75.0", checkpoints["encodec"], frame_rate=50.0)
    fails(r"config.codebook_size=1024 but .* declares 64", checkpoints["mimi"], codebook_size=1024)
    fails(r"config.vocab_size=2048 but .* declares 64", checkpoints["mimi"], MimiSemanticStage, MimiSemanticConfig,
          vocab_size=2048)


def test_encodec_that_cannot_be_one_code_stream(checkpoints, tmp_path):
    for key, value, reason in (("normalize", True, "normalises each chunk"), ("chunk_length_s", 1.0, "overlapping 1.0 s chunks"),
                               ("audio_channels", 2, "2-channel model")):
        bad = shutil.copytree(checkpoints["encodec"], tmp_path / key)
        config = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config, key: value}))
        fails(f"this EnCodec checkpoint cannot be used: it .*{reason}", bad)


def test_the_data_rate_must_be_the_stage_rate(checkpoints, tmp_path):
    from soundstage.recipe import load_recipe
    from soundstage.errors import RecipeError

    with pytest.raises(RecipeError, match=r"key 'stages.encodec.config.sample_rate': 24000 Hz but data.sample_rate is 16000 Hz"):
        load_recipe("speech_tiny_encodec", ["stages.encodec.config.sample_rate=24000"])


def test_weights_that_do_not_fit_their_config(checkpoints, tmp_path):
    bad = shutil.copytree(checkpoints["dac"], tmp_path / "dac")
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "codebook_dim": 8}))  # transformers would re-initialise them
    fails(r"config.path: .*weights do not fit the model its config.json describes \(", bad)
