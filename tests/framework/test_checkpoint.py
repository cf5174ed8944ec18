"""Exported stage files: round trip, refusal of pickles and of the wrong stage, atomic writes."""
import os
import pickle

import pytest
import torch

from soundstage.checkpoint import atomic_path, read_stage_metadata, safe_torch_load
from soundstage.errors import CheckpointError, SoundstageError
from soundstage.plugins.toy.stage import ToyRegressorConfig, ToyRegressorStage
from soundstage.stage import Stage


def test_round_trip_restores_config_and_weights(tmp_path):
    stage = ToyRegressorStage(ToyRegressorConfig(hidden=7, frequency=2.5))
    path = stage.save_pretrained(tmp_path / "m.safetensors")
    meta = read_stage_metadata(path)
    assert meta["plugin"] == "toy_regressor" and meta["config"]["hidden"] == 7
    loaded = Stage.load_pretrained(path)
    assert isinstance(loaded, ToyRegressorStage) and loaded.config.frequency == 2.5
    x = torch.linspace(-1, 1, 5)[:, None]
    assert torch.equal(loaded(x), stage(x))


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.ckpt"
    with open(bomb, "wb") as fh:
        pickle.dump({"state_dict": _Boom()}, fh)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(bomb)
    with pytest.raises(CheckpointError, match="not a soundstage safetensors checkpoint"):
        Stage.load_pretrained(bomb)


def test_checkpoint_of_another_stage_is_refused(tmp_path):
    from dataclasses import dataclass

    from soundstage.registry import register_stage
    from soundstage.stage import StageConfig

    @dataclass
    class OtherCfg(StageConfig):
        pass

    @register_stage("ckpt_other_probe")
    class Other(Stage):
        config_class = OtherCfg

    path = ToyRegressorStage(ToyRegressorConfig()).save_pretrained(tmp_path / "toy.safetensors")
    with pytest.raises(SoundstageError, match="checkpoint is of stage 'toy_regressor'"):
        Other.load_pretrained(path)


def test_incompatible_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    path = ToyRegressorStage(ToyRegressorConfig(hidden=8)).save_pretrained(tmp_path / "toy.safetensors")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    tensors["net.0.weight"] = torch.zeros(3, 1)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(SoundstageError, match="do not fit"):
        Stage.load_pretrained(path)


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "last.bin"
    target.write_bytes(b"good")
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError("No space left on device")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["last.bin"]
