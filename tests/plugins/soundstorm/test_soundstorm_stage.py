"""The stage trains with Lightning on token data, overfits one utterance, and checks its tokens stage and config."""
from pathlib import Path

import pytest
import torch

from soundstage.data.token_batch import TokenBatch
from soundstage.errors import RecipeError, SoundstageError
from soundstage.plugins.soundstorm.stage import SoundStormStage
from soundstage.recipe_schema import DataConfig
from soundstage.stage import StageContext, StageRecord
from soundstage.token_contract import TokenStream
from soundstage.trainer import TrainerConfig

from soundstorm_test_helpers import (AC_RATE, CODEBOOK, Q, SEM_RATE, SEM_VOCAB, WINDOW_FRAMES, InMemoryTokens,
                                     quick_trainer, soundstorm_config)


def one_utterance() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, SEM_VOCAB, (1, WINDOW_FRAMES // 2), generator=g), torch.randint(0, CODEBOOK, (1, Q, WINDOW_FRAMES), generator=g)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # bf16 autocast: speech_small_soundstorm's setting
def test_a_tiny_model_overfits_one_utterance_and_greedy_decoding_returns_it(precision):
    semantic, acoustic = one_utterance()
    torch.manual_seed(0)
    stage = SoundStormStage(soundstorm_config(model={"d_model": 64, "n_layer": 2, "n_head": 2, "conv_kernel": 3}))
    trainer = quick_trainer(300, limit_val_batches=2, val_check_interval=300, check_val_every_n_epoch=None,
                            precision=precision)
    trainer.fit(stage, InMemoryTokens(semantic, acoustic, batch_size=8, repeat=16))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert metrics["val/acc"] == 1.0 and metrics["val/loss"] < 0.1
    assert {f"val/level{q}/acc" for q in range(Q)} <= set(metrics)  # per RVQ level
    assert torch.equal(stage.generate(semantic, temperature=0.0), acoustic)  # 4 + 1 + 1 passes
    prompt = acoustic[..., :5]
    assert torch.equal(stage.generate(semantic, acoustic_prompt=prompt, temperature=0.0), acoustic)


def context(tmp_path: Path, acoustic: dict | None = None, **outputs) -> StageContext:
    streams = {"semantic": TokenStream("semantic", SEM_VOCAB, SEM_RATE).to_dict(),
               "acoustic": TokenStream("acoustic", CODEBOOK, AC_RATE, Q).to_dict() | (acoustic or {})}
    produced = {"train_tokens": str(tmp_path / "t.tar"), "val_tokens": None, "streams": streams} | outputs
    record = StageRecord(name="tokens", plugin="tokenize", stage_dir=tmp_path, produces=("tokens",), outputs=produced)
    return StageContext(name="soundstorm", stage_dir=tmp_path / "ss", run_dir=tmp_path, data=DataConfig(),
                        trainer=TrainerConfig(), upstream={"tokens": record})


def test_prepare_names_every_mismatch_with_its_tokens(tmp_path):
    SoundStormStage(soundstorm_config()).prepare(context(tmp_path))
    with pytest.raises(SoundstageError, match=r"acoustic tokens of stage 'tokens': levels \(config num_quantizers\): expects 3, gets 8"):
        SoundStormStage(soundstorm_config()).prepare(context(tmp_path, {"levels": 8}))
    with pytest.raises(SoundstageError, match=r"vocab_size \(config codebook_size\)"):
        SoundStormStage(soundstorm_config()).prepare(context(tmp_path, {"vocab_size": 1024}))


def test_a_training_batch_with_ids_outside_the_vocabulary_is_refused():
    stage = SoundStormStage(soundstorm_config())
    semantic, acoustic = one_utterance()
    batch = TokenBatch({"semantic": semantic, "acoustic": acoustic + CODEBOOK},
                       {"semantic": torch.tensor([10]), "acoustic": torch.tensor([WINDOW_FRAMES])})
    with pytest.raises(SoundstageError, match="soundstorm: acoustic codes .* outside codebook_size=8"):
        stage._loss(batch)


def test_trains_on_real_token_shards_through_the_token_datamodule(tmp_path):
    from soundstage.data.token_shards import TokenShardWriter

    writer = TokenShardWriter(tmp_path / "tokens", "train")
    g = torch.Generator().manual_seed(0)
    meta = {"duration": 2.0, "sample_rate": 800, "semantic_rate": SEM_RATE, "acoustic_rate": AC_RATE,
            "semantic_vocab_size": SEM_VOCAB, "codebook_size": CODEBOOK}
    for i in range(4):  # 2 s clips (uneven lengths would pad); the stage trains on aligned 1 s windows
        writer.write(f"clip{i}", meta, semantic=torch.randint(0, SEM_VOCAB, (20,), generator=g).numpy(),
                     acoustic=torch.randint(0, CODEBOOK, (Q, 40), generator=g).numpy())
    (shard,) = writer.close()
    ctx = context(tmp_path, train_tokens=shard, val_tokens=shard)
    stage = SoundStormStage(soundstorm_config(batch_size=2, batches_per_epoch=2))
    stage.prepare(ctx)
    trainer = quick_trainer(4, limit_val_batches=1)
    trainer.fit(stage, stage.build_datamodule(ctx))
    assert trainer.global_step == 4 and torch.isfinite(trainer.callback_metrics["val/loss"])


def test_padded_frames_do_not_change_the_real_frames():
    torch.manual_seed(0)
    stage = SoundStormStage(soundstorm_config()).eval()
    codes = torch.randint(0, CODEBOOK, (1, Q, 12))
    semantic = torch.randint(0, SEM_VOCAB, (1, 12))
    alone = stage(codes, semantic)
    padded = stage(torch.cat([codes, torch.randint(0, CODEBOOK, (1, Q, 8))], -1), torch.cat([semantic, semantic[:, :8]], -1),
                   torch.arange(20)[None] < 12)
    torch.testing.assert_close(padded[:, :12], alone)


def test_presets_and_the_transformer_switch():
    from soundstage.plugins.soundstorm.presets import preset_config

    tiny = preset_config("tiny", num_quantizers=4, codebook_size=256, semantic_vocab_size=64)
    assert (tiny.model.d_model, tiny.model.n_layer) == (128, 2)
    paper = preset_config("paper")
    m = paper.model
    assert (m.n_layer, m.n_head, m.d_model, m.ff_mult * m.d_model, m.conv_kernel, m.block) == (12, 16, 1024, 4096, 5, "conformer")
    plain = SoundStormStage(soundstorm_config(model={"d_model": 32, "n_layer": 1, "n_head": 2, "block": "transformer"}))
    assert plain.generate(torch.zeros(1, 4, dtype=torch.long)).shape == (1, Q, 8)
    with pytest.raises(KeyError, match="unknown soundstorm preset"):
        preset_config("huge")


@pytest.mark.slow
def test_the_paper_preset_has_the_papers_size():
    from soundstage.plugins.soundstorm.presets import preset_config

    n = sum(p.numel() for p in SoundStormStage(preset_config("paper")).parameters())
    assert 300e6 < n < 360e6  # the paper: about 350M


@pytest.mark.parametrize("override, message", [
    ("stages.soundstorm.config.num_quantizers=8", "stage 'soundstorm' does not match the acoustic tokens of stage 'codec': levels (config num_quantizers): expects 8, gets 4"),
    ("stages.soundstorm.config.codebook_size=128", "vocab_size (config codebook_size): expects 128, gets 256"),
    ("stages.soundstorm.config.model.conv_kernel=4", "conv_kernel must be odd"),
    ("stages.samples.needs=[codec,semantic,semantic_lm]", "needs an acoustic generator: coarse_lm + fine_lm, or soundstorm"),
])
def test_recipe_validation_checks_soundstorms_contracts(override, message):
    from soundstage.recipe import load_recipe

    with pytest.raises(RecipeError) as err:
        load_recipe("speech_tiny_soundstorm", [override])
    assert message in str(err.value)
