"""The kmeans_tokenizer stage: Lightning fit without an optimizer, frame rate, phone metrics, export round trip."""
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from soundstage.plugins.semantic.kmeans_stage import (
    KMeansTokenizerConfig,
    KMeansTokenizerStage,
    utterance_normalize,
)
from soundstage.plugins.semantic.labelled_audio import collate_utterances
from soundstage.plugins.semantic.synthetic import synthetic_corpus
from soundstage.stage import Stage


class InMemoryAudio(L.LightningDataModule):
    """Random 1 s crops for training, whole labelled utterances for validation."""

    def __init__(self, corpus, batch_size=4, crop=16000):
        super().__init__()
        self.corpus, self.batch_size, self.crop = corpus, batch_size, crop

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        batches = []
        for _ in range(200):
            idx = torch.randint(len(self.corpus), (self.batch_size,), generator=g)
            starts = torch.randint(len(self.corpus[0][0]) - self.crop, (self.batch_size,), generator=g)
            audio = torch.stack([self.corpus[i][0][s : s + self.crop] for i, s in zip(idx.tolist(), starts.tolist())])
            batches.append({"audio": audio, "lengths": torch.full((self.batch_size,), self.crop)})
        return DataLoader(batches, batch_size=None)

    def val_dataloader(self):
        items = [{"audio": w.numpy(), "phonemes": p, "key": str(i)} for i, (w, p) in enumerate(self.corpus[:4])]
        return DataLoader(items, batch_size=2, collate_fn=collate_utterances)


def fit(stage, corpus, max_steps=20):
    trainer = L.Trainer(
        max_steps=max_steps, max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(stage, InMemoryAudio(corpus))
    return trainer


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(12, seconds=2.0, seed=0)


@pytest.fixture(scope="module")
def fitted(corpus):
    stage = KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=50.0, vocab_size=16, init_batches=2))
    trainer = fit(stage, corpus)
    return stage, trainer


def test_fit_streams_batches_without_an_optimizer(fitted):
    stage, trainer = fitted
    assert bool(stage.kmeans.initialized)
    assert int(stage.num_updates) == 20  # max_steps honoured although global_step never moves
    assert float(stage.kmeans.counts.sum()) > 0
    assert stage.kmeans.counts.gt(0).sum() >= 12  # most clusters used
    metrics = trainer.callback_metrics
    for name in ("val/pnmi", "val/phone_purity", "val/cluster_purity"):
        assert name in metrics
    assert 0.3 < float(metrics["val/pnmi"]) <= 1.0  # synthetic phones have distinct spectra


@pytest.mark.parametrize("frame_rate", [25.0, 50.0])
def test_encode_rate_matches_the_configured_hz(corpus, frame_rate):
    stage = KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=frame_rate, vocab_size=8))
    waves = torch.stack([w for w, _ in corpus[:4]])
    stage.kmeans.init_plus_plus(stage.features(waves).flatten(0, 1), torch.Generator().manual_seed(0))
    for seconds in (0.5, 1.0, 1.37, 2.0):
        n = int(seconds * 16000)
        ids = stage.encode(waves[:2, :n])
        assert ids.shape == (2, int(n * frame_rate / 16000)) and ids.dtype == torch.int64
        assert int(ids.max()) < stage.vocab_size
    assert stage.sample_rate == 16000 and stage.frame_rate == frame_rate


def test_save_load_round_trip_gives_identical_ids(fitted, corpus, tmp_path):
    stage, _ = fitted
    path = stage.save_pretrained(tmp_path / "model.safetensors")
    loaded = Stage.load_pretrained(path)
    assert isinstance(loaded, KMeansTokenizerStage)
    waves = torch.stack([w for w, _ in corpus[4:8]])
    assert torch.equal(loaded.encode(waves), stage.encode(waves))
    assert loaded.vocab_size == 16 and loaded.frame_rate == 50.0


def test_bad_frame_rate_and_unfitted_encode_are_clear_errors():
    from soundstage.errors import SoundstageError

    with pytest.raises(SoundstageError, match="whole number"):
        KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=33.0))
    with pytest.raises(SoundstageError, match="not fitted"):
        KMeansTokenizerStage(KMeansTokenizerConfig()).encode(torch.zeros(1, 1600))


@pytest.mark.parametrize("norm", ["mean", "meanvar"])
def test_utterance_norm_uses_only_the_valid_frames(corpus, norm):
    stage = KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=50.0, vocab_size=8, utterance_norm=norm))
    plain = KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=50.0, vocab_size=8))
    wave = corpus[0][0][:16000]
    alone = stage.raw_features(wave[None])  # [1, 50, D]
    assert alone.mean(1).abs().max() < 1e-4  # the utterance's mean is removed ...
    if norm == "meanvar":
        assert torch.allclose(alone.std(1, unbiased=False), torch.ones(1, alone.shape[-1]), atol=1e-3)  # ... and its scale
    else:
        assert torch.allclose(alone, plain.raw_features(wave[None]) - plain.raw_features(wave[None]).mean(1, keepdim=True), atol=1e-4)
    # Padding frames, whatever they hold, never enter an utterance's statistics.
    x = torch.randn(2, 60, 5)
    x[0, 40:] = 1e3
    out = utterance_normalize(x, torch.tensor([40, 60]), norm)
    assert torch.allclose(out[0, :40], utterance_normalize(x[:1, :40], None, norm)[0], atol=1e-5)
    assert torch.allclose(out[1], utterance_normalize(x[1:], None, norm)[0], atol=1e-5)
    from soundstage.errors import SoundstageError

    with pytest.raises(SoundstageError, match="utterance_norm"):
        KMeansTokenizerStage(KMeansTokenizerConfig(utterance_norm="cmvn"))


def test_token_costs_rank_every_token_and_their_argmin_is_the_encoding(fitted, corpus):
    stage, _ = fitted
    wave = corpus[0][0][None, :8000]
    costs = stage.token_costs(wave)
    ids = stage.encode(wave)
    assert costs.shape == (*ids.shape, 16) and bool((costs >= 0).all())
    assert torch.equal(costs.argmin(dim=-1), ids)
