"""Both semantic stages on real audio shards through their own build_datamodule (AudioDataModule + labelled val)."""
import lightning as L
import pytest

from soundstage.plugins.semantic.kmeans_stage import KMeansTokenizerConfig, KMeansTokenizerStage
from soundstage.plugins.semantic.synthetic import synthetic_corpus
from soundstage.recipe_schema import DataConfig
from soundstage.stage import StageContext
from soundstage.trainer import TrainerConfig

shard_writer = pytest.importorskip("soundstage.data.shard_writer")


def write_split(out, corpus):
    writer = shard_writer.AudioShardWriter(out, 16000)
    for i, (wave, phonemes) in enumerate(corpus):
        writer.write(f"utt{i:03d}", wave.numpy(), {"phonemes": phonemes, "voice": "synthetic"})
    index = writer.close()
    return str(out / index["pattern"])


def test_kmeans_stage_fits_from_shards_and_logs_phone_metrics(tmp_path):
    train = write_split(tmp_path / "train", synthetic_corpus(8, seconds=2.0, seed=0))
    val = write_split(tmp_path / "val", synthetic_corpus(3, seconds=2.0, seed=1, pitches=(240.0, 260.0)))
    ctx = StageContext(name="km", stage_dir=tmp_path / "km", run_dir=tmp_path, data=DataConfig(), trainer=TrainerConfig(),
                       train_shards=train, val_shards=val, seed=0)
    stage = KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=50.0, vocab_size=16, batch_size=4, segment_seconds=1.0,
                                                       batches_per_epoch=6, init_batches=2))
    stage.prepare(ctx)
    dm = stage.build_datamodule(ctx)
    trainer = L.Trainer(max_steps=8, max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(stage, dm)
    assert int(stage.num_updates) == 8
    assert "val/pnmi" in trainer.callback_metrics
    assert 0.0 < float(trainer.callback_metrics["val/pnmi"]) <= 1.0
