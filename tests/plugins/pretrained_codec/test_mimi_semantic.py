"""Mimi's first codebook as semantic tokens: the codec's level 0 at Mimi's frame rate, whole frames."""
import pytest
import torch

from soundstage.errors import SoundstageError
from soundstage.plugins.pretrained_codec.base import _device
from soundstage.plugins.pretrained_codec.semantic_stage import MimiSemanticConfig, MimiSemanticStage
from soundstage.plugins.pretrained_codec.stage import PretrainedCodecConfig, PretrainedCodecStage
from soundstage.stage import Stage


def test_ids_are_the_codec_level_zero_in_whole_frames(checkpoints):
    semantic = MimiSemanticStage(MimiSemanticConfig(path=str(checkpoints["mimi"])))
    codec = PretrainedCodecStage(PretrainedCodecConfig(path=str(checkpoints["mimi"])))
    assert (semantic.frame_rate, semantic.vocab_size, semantic.hop_length) == (12.5, 64, 1280.0)
    stream = MimiSemanticStage.token_streams(semantic.config, {})["semantic"]
    assert (stream.vocab_size, stream.frame_rate) == (64, 12.5)
    wave = torch.randn(2, 16000 + 700) * 0.1  # 13.05 frames: 13 whole ones
    ids = semantic.encode(wave)
    assert ids.shape == (2, 13) and ids.dtype == torch.int64 and semantic.encode(wave[0]).shape == (13,)
    assert torch.equal(ids, codec.encode(wave)[:, 0, :13])
    assert semantic.encode(torch.randn(1, 1279)).shape == (1, 0)


def test_export_and_load(checkpoints, tmp_path):
    semantic = MimiSemanticStage(MimiSemanticConfig(path=str(checkpoints["mimi"])))
    loaded = Stage.load_pretrained(semantic.save_pretrained(tmp_path / "semantic.safetensors"))
    wave = torch.randn(1, 8000) * 0.1
    assert isinstance(loaded, MimiSemanticStage) and torch.equal(loaded.encode(wave), semantic.encode(wave))


def test_a_device_that_is_not_here_names_the_key():
    assert _device("cpu", "stages.codec.config.device").type == "cpu"
    with pytest.raises(SoundstageError, match=r"stages.codec.config.device: cannot use device 'bogus' here"):
        _device("bogus", "stages.codec.config.device")
    if not torch.cuda.is_available():
        with pytest.raises(SoundstageError, match=r"cannot use device 'cuda'"):
            _device("cuda", "stages.codec.config.device")
