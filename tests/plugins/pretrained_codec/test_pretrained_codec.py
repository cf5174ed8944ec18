"""The pretrained codec stage on tiny EnCodec / DAC / Mimi checkpoints: shapes, rates, levels, export and load."""
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from tiny_codecs import FACTS, FAMILIES, tiny_model

from soundstage.errors import SoundstageError
from soundstage.plugins.pretrained_codec.stage import PretrainedCodecConfig, PretrainedCodecStage
from soundstage.stage import Stage


def codec(path, **overrides):
    return PretrainedCodecStage(PretrainedCodecConfig(path=str(path), sample_rate=16000, **overrides))


@pytest.mark.parametrize("family", FAMILIES)
def test_declares_the_checkpoint_rates_and_sizes(checkpoints, family):
    sample_rate, frame_rate, codebook, levels = FACTS[family]
    stage = codec(checkpoints[family])
    assert (stage.frame_rate, stage.codebook_size, stage.num_quantizers, stage.sample_rate) == (frame_rate, codebook, levels, 16000)
    assert stage.facts.sample_rate == sample_rate
    assert stage.hop_length == pytest.approx(16000 / frame_rate)
    stream = PretrainedCodecStage.token_streams(stage.config, {})["acoustic"]
    assert (stream.vocab_size, stream.levels, stream.frame_rate) == (codebook, levels, frame_rate)
    # the same numbers transformers derives (its frame_rate is rounded up; these rates are whole)
    config = tiny_model(family).config
    assert stage.facts.frame_rate == pytest.approx(float(config.frame_rate))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("samples", [16000, 16001, 8000, 333])
def test_encode_decode_follow_the_frame_contract(checkpoints, family, samples):
    stage = codec(checkpoints[family])
    codes = stage.encode(torch.randn(2, samples) * 0.1)
    frames = -(-samples * FACTS[family][1] // 16000)  # ceil(T * frame_rate / sample_rate), as soundstream's
    assert codes.shape == (2, 4, frames) and codes.dtype == torch.int64 == stage.encode(torch.randn(samples)).dtype
    assert stage.num_frames(samples) == frames and 0 <= int(codes.min()) and int(codes.max()) < stage.codebook_size
    wave = stage.decode(codes)
    assert wave.shape == (2, round(frames * 16000 / FACTS[family][1])) and torch.isfinite(wave).all()
    assert stage.decode(codes[0]).shape == wave.shape[1:]  # unbatched [Q, T']
    assert stage.decode(codes, length=samples).shape == (2, min(samples, wave.shape[1]))


@pytest.mark.parametrize("family", FAMILIES)
def test_fewer_levels_are_the_first_levels(checkpoints, family):
    wave = torch.randn(1, 8000) * 0.1
    full = codec(checkpoints[family]).encode(wave)
    assert torch.equal(codec(checkpoints[family]).encode(wave, num_quantizers=2), full[:, :2])
    assert torch.equal(codec(checkpoints[family], num_quantizers=3).encode(wave), full[:, :3])


def test_bandwidth_picks_the_levels(checkpoints):
    # tiny EnCodec: 64 codes (6 bits) at 75 Hz = 0.45 kbps per level
    assert codec(checkpoints["encodec"], bandwidth=0.9).num_quantizers == 2
    with pytest.raises(SoundstageError, match=r"config.bandwidth=1.0 kbps is 2.22 levels"):
        codec(checkpoints["encodec"], bandwidth=1.0)
    with pytest.raises(SoundstageError, match=r"config.num_quantizers=3 but config.bandwidth=0.9 kbps is 2 levels"):
        codec(checkpoints["encodec"], bandwidth=0.9, num_quantizers=3)
    with pytest.raises(SoundstageError, match=r"5 RVQ levels asked .* the checkpoint has 4"):
        codec(checkpoints["dac"], num_quantizers=5)


def test_encode_matches_the_model_at_its_own_rate(checkpoints):
    """Same rate (DAC 16 kHz): no resampling, the codes are the model's own."""
    stage = codec(checkpoints["dac"])
    wave = torch.randn(1, 3200) * 0.1
    with torch.no_grad():
        ref = stage.codec.model.encode(wave[:, None], n_quantizers=4).audio_codes
    assert torch.equal(stage.encode(wave), ref)


def test_resampling_keeps_a_tone(checkpoints):
    """16 kHz in, 24 kHz inside: the resampled wave the codec sees holds the same 440 Hz tone."""
    from soundstage.plugins.pretrained_codec.codec_model import _resample

    t = torch.arange(16000) / 16000
    up = _resample(torch.sin(2 * torch.pi * 440 * t)[None], 16000, 24000, 24000)
    ref = torch.sin(2 * torch.pi * 440 * torch.arange(24000) / 24000)
    assert up.shape == (1, 24000) and torch.allclose(up[0, 100:-100], ref[100:-100], atol=1e-2)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_carries_the_checkpoint(checkpoints, family, tmp_path):
    src = shutil.copytree(checkpoints[family], tmp_path / "ckpt")
    stage = codec(src)
    file = stage.save_pretrained(tmp_path / "codec.safetensors")
    with safe_open(str(file), framework="pt") as fh:
        assert all(k.startswith("checkpoint.") for k in fh.keys()) and len(fh.keys()) > 0
    shutil.rmtree(src)  # the exported model no longer needs the directory
    loaded = Stage.load_pretrained(file)
    wave = torch.randn(1, 8000) * 0.1
    assert isinstance(loaded, PretrainedCodecStage) and not loaded.training
    assert torch.equal(loaded.encode(wave), stage.encode(wave))
    assert torch.allclose(loaded.decode(stage.encode(wave)), stage.decode(stage.encode(wave)), atol=1e-6)
    again = loaded.save_pretrained(tmp_path / "again.safetensors")  # re-saving reads the tensors from the file
    assert torch.equal(Stage.load_pretrained(again).encode(wave), stage.encode(wave))


def test_export_can_record_the_path_instead(checkpoints, tmp_path):
    src = shutil.copytree(checkpoints["dac"], tmp_path / "ckpt")
    stage = codec(src, copy_weights=False)
    file = stage.save_pretrained(tmp_path / "codec.safetensors")
    assert stage.config.weights_sha256 == "" and stage.config.hf_config == ""  # the recipe's config is left as it was
    assert file.stat().st_size < 10_000  # config only
    wave = torch.randn(1, 8000) * 0.1
    assert torch.equal(Stage.load_pretrained(file).encode(wave), stage.encode(wave))

    tiny_model("dac", seed=1).save_pretrained(src, safe_serialization=True)  # other weights at the same path
    with pytest.raises(SoundstageError, match="weights in .* changed since this model was made"):
        Stage.load_pretrained(file)
    shutil.rmtree(src)
    with pytest.raises(SoundstageError) as err:
        Stage.load_pretrained(file)
    message = str(err.value)
    assert "records the codec's directory" in message and "config.path" in message and "does not exist" in message
    assert "\n" not in message


def test_a_changed_config_json_is_refused_at_load(checkpoints, tmp_path):
    src = shutil.copytree(checkpoints["dac"], tmp_path / "ckpt")
    stage = codec(src, copy_weights=False)
    file = stage.save_pretrained(tmp_path / "codec.safetensors")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "codebook_dim": 4, "sampling_rate": 8000}))
    with pytest.raises(SoundstageError, match="config.json changed since this model was made"):
        Stage.load_pretrained(file)


def test_facts_of_the_published_configurations():
    """The numbers docs/pretrained_codecs.md tabulates, from the published models' configurations (no weights)."""
    import transformers as tf

    from soundstage.plugins.pretrained_codec.checkpoint import codec_facts
    from soundstage.plugins.pretrained_codec.families import FAMILIES

    def facts(family, config):
        f = codec_facts(FAMILIES[family], config.to_dict(), "config.path")
        return f.sample_rate, f.frame_rate, f.codebook_size, f.num_quantizers

    assert facts("encodec", tf.EncodecConfig()) == (24000, 75.0, 1024, 32)  # facebook/encodec_24khz
    assert facts("mimi", tf.MimiConfig()) == (24000, 12.5, 2048, 32)  # kyutai/mimi
    assert facts("dac", tf.DacConfig(sampling_rate=16000, downsampling_ratios=[2, 4, 5, 8], n_codebooks=12)) == (16000, 50.0, 1024, 12)
    dac44 = tf.DacConfig(sampling_rate=44100, downsampling_ratios=[2, 4, 8, 8], n_codebooks=9)
    assert facts("dac", dac44) == (44100, 44100 / 512, 1024, 9) and dac44.frame_rate == 87  # transformers rounds up
