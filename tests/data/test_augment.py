"""Training-crop augmentation: reproducible from the stream's RNG, level-safe, off for validation."""
import pickle
import random

import numpy as np
import pytest
import torch

from soundstage.config import build_config
from soundstage.data.audio_datamodule import AudioDataModule
from soundstage.data.augment import AugmentConfig, Augmenter
from soundstage.data.shard_writer import AudioShardWriter
from soundstage.errors import RecipeError

pytest.importorskip("audiomentations")
SR = 16000


def _speechlike(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal: harmonics of 140 Hz under a syllable-rate envelope."""
    t = np.arange(int(SR * seconds)) / SR
    wave = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed)
    return (0.05 * wave * envelope).astype(np.float32)


def _only(step: str, **overrides) -> Augmenter:
    """An augmenter that degrades every crop with one step (``room``, ``tilt``, ``eq``, ``noise``) and no level change."""
    chances = {f"{name}_prob": float(name == step) for name in ("room", "tilt", "eq", "noise")}
    return Augmenter(AugmentConfig(**{"prob": 1.0, "gain_db": [0.0, 0.0], **chances, **overrides}), SR)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_same_rng_same_degradation_and_global_state_untouched():
    aug = Augmenter(AugmentConfig(prob=1.0, room_prob=1.0, tilt_prob=1.0, eq_prob=1.0, noise_prob=1.0), SR)
    x = _speechlike()
    random.seed(123)
    np.random.seed(123)
    before = random.random(), np.random.rand()
    random.seed(123)
    np.random.seed(123)
    a = aug(x, random.Random("item-1"))
    after = random.random(), np.random.rand()
    b = aug(x, random.Random("item-1"))
    c = aug(x, random.Random("item-2"))
    assert before == after  # the trainer's own random streams are not consumed
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert not np.allclose(a, x)


def test_prob_zero_returns_the_crop_and_prob_shares_are_respected():
    x = _speechlike()
    off = Augmenter(AugmentConfig(prob=0.0), SR)
    assert off(x, random.Random(0)) is x
    half = _only("eq", prob=0.5)
    rng = random.Random(0)
    changed = sum(not np.array_equal(half(x, rng), x) for _ in range(200))
    assert 70 <= changed <= 130  # Binomial(200, 0.5): +-4.2 standard deviations


def test_room_keeps_the_level_and_noise_hits_the_requested_snr():
    x = _speechlike()
    room = _only("room")
    for seed in range(5):
        wet = room(x, random.Random(seed))
        assert not np.allclose(wet, x)
        assert _rms(wet) == pytest.approx(_rms(x), rel=1e-3)
    noisy = _only("noise", noise_snr_db=[20.0, 20.0])
    for seed in range(5):
        snr = 20 * np.log10(_rms(x) / _rms(noisy(x, random.Random(seed)) - x))
        assert snr == pytest.approx(20.0, abs=0.5)


def test_loud_crops_are_scaled_down_never_clipped():
    aug = _only("eq", eq_gain_db=12.0, gain_db=[6.0, 6.0])
    y = aug(_speechlike() * 12, random.Random(0))  # peak ~0.95 before a +6 dB gain
    assert np.abs(y).max() == pytest.approx(0.99, abs=1e-4)


@pytest.mark.parametrize("key, value", [
    ("prob", 1.5), ("noise_snr_db", [40.0, 10.0]), ("room_absorption", [0.0, 0.3]), ("tilt_db", [3.0]),
])
def test_bad_values_fail_when_the_recipe_is_read_naming_the_key(key, value):
    from soundstage.plugins.codec.stage import SoundStreamConfig

    with pytest.raises(RecipeError, match=rf"r\.yaml: key 'stages\.codec\.config': augment\.{key}: "):
        build_config(SoundStreamConfig, {"augment": {key: value}}, where="stages.codec.config", source="r.yaml")


def test_codec_config_takes_an_augment_section_and_rejects_unknown_keys():
    from soundstage.plugins.codec.stage import SoundStreamConfig

    config = build_config(SoundStreamConfig, {"augment": {"prob": 0.5, "room_prob": 0.2}})
    assert config.augment.prob == 0.5 and config.augment.room_prob == 0.2
    with pytest.raises(RecipeError, match=r"augment\.reverb.*valid keys of AugmentConfig"):
        build_config(SoundStreamConfig, {"augment": {"reverb": 0.5}}, where="stages.codec.config")


def test_datamodule_augments_training_crops_only(tmp_path):
    writer = AudioShardWriter(tmp_path / "shards", SR, prefix="tr", resume=False)
    for i in range(6):
        writer.write(f"utt{i}", _speechlike(1.0, seed=i), {})
    writer.close()
    shards = str(tmp_path / "shards" / "tr-000000.tar")

    def batches(augment, split, workers=0):
        dm = AudioDataModule(shards, shards, SR, batch_size=3, segment_samples=4000, batches_per_epoch=2,
                             shuffle_buffer=1, seed=0, augment=augment, num_workers=workers)
        loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
        return [b["audio"] for b in loader]

    on = AugmentConfig(prob=1.0)
    clean_train, aug_train = batches(None, "train"), batches(on, "train")
    assert all(c.shape == a.shape for c, a in zip(clean_train, aug_train))
    assert not any(torch.allclose(c, a) for c, a in zip(clean_train, aug_train))
    for c, a in zip(batches(None, "val"), batches(on, "val")):
        torch.testing.assert_close(c, a, rtol=0, atol=0)
    # a DataLoader worker process rebuilds the transforms and draws the same degradations
    for a, w in zip(aug_train, batches(on, "train", workers=1)):
        torch.testing.assert_close(a, w, rtol=0, atol=0)


def test_room_bank_is_drawn_once_the_same_in_every_worker_and_varied():
    x = _speechlike()
    banked = _only("room", room_bank=8)
    fresh = _only("room", room_bank=0)
    wet = banked(x, random.Random(0))
    assert len(banked._rooms) == 8
    assert _rms(wet) == pytest.approx(_rms(x), rel=1e-3) and not np.allclose(wet, x)
    assert not np.allclose(fresh(x, random.Random(0)), x) and fresh._rooms is None
    worker = pickle.loads(pickle.dumps(banked))  # a DataLoader worker's copy draws its own bank
    assert worker._rooms is None
    np.testing.assert_array_equal(worker(x, random.Random(0)), wet)
    tails = {round(float(np.abs(rir).sum()), 4) for rir in banked._rooms}
    assert len(tails) == 8  # eight different rooms
    impulse = np.zeros(4000, np.float32)
    impulse[0] = 1.0
    rir = banked._rooms[random.Random(5).randrange(8)]
    expected = np.pad(rir, (0, max(0, 4000 - len(rir))))[:4000]  # the room's impulse response, cut to the crop
    np.testing.assert_allclose(banked._banked_room(impulse, random.Random(5)), expected, atol=1e-6)
