"""The tokenize job stage with small real upstream models: token shards match the models' encode()."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from soundstage.data.audio_datamodule import decode_audio_sample
from soundstage.data.shard_writer import AudioShardWriter
from soundstage.data.token_datamodule import TokenDataModule
from soundstage.data.token_shards import decode_token_sample
from soundstage.plugins.tokenize.stage import TokenizeConfig, TokenizeStage
from soundstage.recipe_schema import DataConfig
from soundstage.errors import SoundstageError
from soundstage.registry import register_stage
from soundstage.stage import Stage, StageConfig, StageContext, StageRecord
from soundstage.trainer import TrainerConfig

SR = 8000


@dataclass
class TinyCodecConfig(StageConfig):
    hop: int = 80
    levels: int = 3
    codebook: int = 16


@register_stage("tiny_test_codec")
class TinyCodec(Stage):
    """Stand-in codec: a strided conv whose outputs are bucketed into codebook ids (real weights)."""

    config_class = TinyCodecConfig
    produces = ("acoustic",)

    def __init__(self, config: TinyCodecConfig) -> None:
        super().__init__(config)
        self.conv = torch.nn.Conv1d(1, config.levels, config.hop, stride=config.hop)

    sample_rate = SR
    frame_rate = property(lambda self: SR / self.config.hop)
    num_quantizers = property(lambda self: self.config.levels)
    codebook_size = property(lambda self: self.config.codebook)

    def encode(self, wave, num_quantizers=None):  # [B, T] -> [B, Q, T // hop]
        pad = (-wave.shape[-1]) % self.config.hop
        z = torch.tanh(self.conv(torch.nn.functional.pad(wave, (0, pad))[:, None]))
        codes = ((z + 1) / 2 * (self.config.codebook - 1)).round().long()
        return codes[:, : num_quantizers or self.config.levels]


@dataclass
class TinySemanticConfig(StageConfig):
    hop: int = 160
    vocab: int = 10


@register_stage("tiny_test_semantic")
class TinySemantic(Stage):
    """Stand-in semantic tokenizer: argmax over a strided conv's channels."""

    config_class = TinySemanticConfig
    produces = ("semantic",)

    def __init__(self, config: TinySemanticConfig) -> None:
        super().__init__(config)
        self.conv = torch.nn.Conv1d(1, config.vocab, config.hop, stride=config.hop)

    sample_rate = SR
    frame_rate = property(lambda self: SR / self.config.hop)
    vocab_size = property(lambda self: self.config.vocab)

    def encode(self, wave):  # [B, T] -> [B, ceil(T / hop)]
        pad = (-wave.shape[-1]) % self.config.hop
        return self.conv(torch.nn.functional.pad(wave, (0, pad))[:, None]).argmax(1)


def _audio_shards(out: Path, n: int, prefix: str) -> str:
    rng = np.random.default_rng(n)
    w = AudioShardWriter(out, SR, prefix=prefix, max_bytes=30_000, resume=False)
    for i in range(n):
        w.write(f"{prefix}{i}", 0.2 * rng.standard_normal(int(SR * rng.uniform(0.3, 1.0))).astype(np.float32),
                {"text": f"utterance {i}"})
    return str(out / w.close()["pattern"])


def _ctx(tmp_path: Path, upstream: dict, train: str, val: str | None) -> StageContext:
    trainer = TrainerConfig(accelerator="cpu", devices=1, enable_progress_bar=False)
    return StageContext(name="tokens", stage_dir=tmp_path / "run" / "tokens", run_dir=tmp_path / "run",
                        data=DataConfig(sample_rate=SR), trainer=trainer, upstream=upstream,
                        train_shards=train, val_shards=val)


def _record(tmp_path: Path, stage: Stage, name: str) -> StageRecord:
    path = stage.save_pretrained(tmp_path / name / "model.safetensors")
    return StageRecord(name, stage.stage_name, path.parent, stage.produces, checkpoint=path)


def test_tokenize_both_streams(tmp_path):
    torch.manual_seed(0)
    codec, semantic = TinyCodec(TinyCodecConfig()), TinySemantic(TinySemanticConfig())
    upstream = {"codec": _record(tmp_path, codec, "codec"), "sem": _record(tmp_path, semantic, "sem")}
    train = _audio_shards(tmp_path / "audio" / "train", 9, "tr")
    val = _audio_shards(tmp_path / "audio" / "val", 4, "va")
    stage = TokenizeStage(TokenizeConfig(batch_size=3, num_quantizers=2))
    out = stage.run(_ctx(tmp_path, upstream, train, val))

    acoustic, semantic_stream = out["streams"]["acoustic"], out["streams"]["semantic"]
    assert acoustic == {"kind": "acoustic", "vocab_size": 16, "frame_rate": 100.0, "levels": 2, "sample_rate": SR}
    assert semantic_stream == {"kind": "semantic", "vocab_size": 10, "frame_rate": 50.0, "levels": 1, "sample_rate": SR}
    audio = {s["__key__"]: s for s in wds.WebDataset(train, shardshuffle=False)}
    tokens = {s["__key__"]: decode_token_sample(s, ("semantic", "acoustic"))
              for s in wds.WebDataset(sorted(map(str, Path(out["train_tokens"]).glob("*.tar"))), shardshuffle=False)}
    assert set(tokens) == set(audio) and len(tokens) == 9
    for key, item in tokens.items():
        _, wave, meta = decode_audio_sample(audio[key], SR)
        with torch.no_grad():
            x = torch.from_numpy(wave)[None]
            assert np.array_equal(item["acoustic"], codec.encode(x, 2)[0].numpy())  # exact, unpadded
            assert np.array_equal(item["semantic"], semantic.encode(x)[0].numpy())
        assert item["meta"]["text"] == meta["text"] and abs(item["meta"]["duration"] - len(wave) / SR) < 1e-9
        assert item["acoustic"].shape == (2, int(np.ceil(len(wave) / 80)))
    index = (Path(out["val_tokens"]) / "index.json").read_text()
    assert '"num_samples": 4' in index
    dm = TokenDataModule(out["train_tokens"], out["val_tokens"], batch_size=2,
                         window={"semantic": 10, "acoustic": 20})  # 0.2 s at 50 / 100 Hz
    batch = next(iter(dm.train_dataloader()))
    assert batch.tokens["acoustic"].shape == (2, 2, 20) and batch.tokens["semantic"].shape == (2, 10)


def test_speed_perturbation_adds_a_copy_of_each_training_utterance_per_speed_and_leaves_validation_alone(tmp_path):
    from soundstage.config import RangeError
    from soundstage.data.audio_io import speed_perturb

    torch.manual_seed(0)
    codec = TinyCodec(TinyCodecConfig())
    upstream = {"codec": _record(tmp_path, codec, "codec")}
    train = _audio_shards(tmp_path / "audio" / "train", 4, "tr")
    val = _audio_shards(tmp_path / "audio" / "val", 3, "va")
    out = TokenizeStage(TokenizeConfig(batch_size=3, speed_perturb=[0.9, 1.1])).run(_ctx(tmp_path, upstream, train, val))
    audio = {s["__key__"]: decode_audio_sample(s, SR)[1] for s in wds.WebDataset(train, shardshuffle=False)}

    def tokens(split):
        shards = sorted(map(str, Path(out[f"{split}_tokens"]).glob("*.tar")))
        return {s["__key__"]: decode_token_sample(s, ("acoustic",)) for s in wds.WebDataset(shards, shardshuffle=False)}

    train_tokens = tokens("train")
    assert set(train_tokens) == {f"{k}{suffix}" for k in audio for suffix in ("", "_speed90", "_speed110")}
    for key, wave in audio.items():
        fast = speed_perturb(wave, SR, 1.1)
        assert abs(len(fast) - len(wave) / 1.1) <= 1
        item = train_tokens[f"{key}_speed110"]
        with torch.no_grad():
            assert np.array_equal(item["acoustic"], codec.encode(torch.from_numpy(fast)[None])[0].numpy())
        assert item["meta"]["speed"] == 1.1 and abs(item["meta"]["duration"] - len(fast) / SR) < 1e-9
        assert "speed" not in train_tokens[key]["meta"]
    assert len(tokens("val")) == 3 and '"num_samples": 12' in (Path(out["train_tokens"]) / "index.json").read_text()
    with pytest.raises(RangeError, match="speed_perturb: 1.0 is not a speed factor"):
        TokenizeConfig(speed_perturb=[1.0])


def test_tokenize_semantic_only(tmp_path):
    semantic = TinySemantic(TinySemanticConfig())
    train = _audio_shards(tmp_path / "audio", 3, "tr")
    out = TokenizeStage(TokenizeConfig()).run(_ctx(tmp_path, {"s": _record(tmp_path, semantic, "s")}, train, None))
    assert set(out) == {"train_tokens", "streams"} and set(out["streams"]) == {"semantic"}


@pytest.mark.slow
def test_tokenize_two_ranks_write_their_own_shards(tmp_path):
    """2 CPU ranks (ddp_spawn): every utterance is encoded exactly once, each rank writes its own shards."""
    codec = TinyCodec(TinyCodecConfig())
    train = _audio_shards(tmp_path / "audio", 9, "tr")
    ctx = _ctx(tmp_path, {"codec": _record(tmp_path, codec, "codec")}, train, None)
    ctx.trainer = TrainerConfig(accelerator="cpu", devices=2, strategy="ddp_spawn", enable_progress_bar=False)
    out = TokenizeStage(TokenizeConfig(batch_size=2)).run(ctx)
    folder = Path(out["train_tokens"])
    assert {p.name for p in folder.glob("*.tar")} == {"r0-000000.tar", "r1-000000.tar"}
    keys = [s["__key__"] for s in wds.WebDataset(sorted(map(str, folder.glob("*.tar"))), shardshuffle=False)]
    assert sorted(keys) == sorted(f"tr{i}" for i in range(9))


@register_stage("tiny_test_overflowing_codec")
class OverflowingCodec(TinyCodec):
    """A codec plugin with a bug: it declares 16 codes per level but emits ids 16 and up."""

    def encode(self, wave, num_quantizers=None):
        return super().encode(wave, num_quantizers) + self.config.codebook


def test_ids_outside_the_declared_vocabulary_fail_with_one_line_naming_both_stages(tmp_path):
    codec = OverflowingCodec(TinyCodecConfig())
    train = _audio_shards(tmp_path / "audio", 3, "tr")
    with pytest.raises(SoundstageError) as err:
        TokenizeStage(TokenizeConfig()).run(_ctx(tmp_path, {"codec": _record(tmp_path, codec, "codec")}, train, None))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("stage 'tokens': stage 'codec' made acoustic ids") and "outside its declared vocab_size 16" in message
