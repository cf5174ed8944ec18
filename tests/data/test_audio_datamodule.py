"""AudioDataModule: equal batch counts per rank, exact validation coverage, corrupt samples skipped."""
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from soundstage.data.audio_datamodule import AudioDataModule, crop
from soundstage.data.audio_io import encode_flac
from soundstage.data.shard_writer import AudioShardWriter

SR = 8000


def _write_split(out: Path, prefix: str, counts: list[int]) -> tuple[str, list[str]]:
    """One shard per entry of ``counts`` (samples of varied length); returns (pattern, keys)."""
    keys = []
    rng = np.random.default_rng(len(counts))
    for shard, n in enumerate(counts):
        w = AudioShardWriter(out, SR, prefix=f"{prefix}{shard}", resume=False)
        for i in range(n):
            key = f"{prefix}{shard}_{i:03d}"
            w.write(key, 0.1 * rng.standard_normal(int(SR * rng.uniform(0.2, 0.6))).astype(np.float32), {})
            keys.append(key)
        w.close()
    return "::".join(str(out / f"{prefix}{s}-000000.tar") for s in range(len(counts))), keys


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    train, train_keys = _write_split(out / "train", "tr", [7, 3, 11])
    val, val_keys = _write_split(out / "val", "va", [4, 1, 6, 2, 5])
    return train, train_keys, val, val_keys


def _dm(train, val, rank, **kw):
    dm = AudioDataModule(train, val, sample_rate=SR, batch_size=3, segment_samples=2000, num_workers=2,
                         shuffle_buffer=4, seed=1, **kw)
    dm.rank, dm.world_size = rank, 2
    return dm


def test_two_ranks_two_workers(shards):
    train, train_keys, val, val_keys = shards
    seen = Counter()
    for rank in (0, 1):
        dm = _dm(train, val, rank, batches_per_epoch=5, val_segment_samples=0)
        batches = list(dm.train_dataloader())
        assert len(batches) == len(dm.train_dataloader()) == 5  # same count on every rank
        for b in batches:
            assert b["audio"].shape == (3, 2000) and b["audio"].dtype.is_floating_point
            assert b["lengths"].tolist() == [2000] * 3 or max(b["lengths"].tolist()) <= 2000
            assert set(b["key"]) <= set(train_keys)
        for b in dm.val_dataloader():
            assert b["audio"].shape[1] == int(b["lengths"].max())
            seen.update(b["key"])
    assert set(seen) == set(val_keys) and set(seen.values()) == {1}  # every val sample exactly once


def test_default_epoch_length_from_index(shards):
    train, _, val, _ = shards
    dm = _dm(train, val, 0)
    assert len(dm.train_dataloader()) == (7 + 3 + 11) // (3 * 2)


def test_epochs_differ_and_short_samples_are_padded(shards):
    train, _, val, _ = shards
    dm = AudioDataModule(train, None, SR, batch_size=4, segment_samples=6000, batches_per_epoch=3, shuffle_buffer=8)
    loader = dm.train_dataloader()
    first = [k for b in loader for k in b["key"]]
    second = [k for b in loader for k in b["key"]]
    assert first != second
    b = next(iter(loader))
    assert b["audio"].shape == (4, 6000) and (b["lengths"] < 6000).all()  # all samples are shorter
    for row, n in zip(b["audio"], b["lengths"]):
        assert not row[n:].any()
    assert dm.val_dataloader() == []


def test_workers_persist_across_epochs_and_each_epoch_draws_anew(shards):
    """Starting workers forks the (large) training process, so they persist; they still see each new
    epoch (the stream's epoch lives in shared memory), so every epoch draws other crops."""
    train, _, val, _ = shards
    dm = AudioDataModule(train, None, SR, batch_size=3, segment_samples=2000, batches_per_epoch=4, shuffle_buffer=4,
                         num_workers=2)
    loader = dm.train_dataloader()
    epochs, pids = [], []
    for _ in range(3):
        epochs.append([(k, float(a.sum())) for b in loader for k, a in zip(b["key"], b["audio"])])
        pids.append({w.pid for w in loader._iterator._workers})  # torch's worker processes of this pass
    assert len(epochs[0]) == 12 and epochs[0] != epochs[1] != epochs[2]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    assert dm.train_dataloader().dataset.epoch == 0 and loader.dataset.epoch == 3


def test_crop_is_aligned_to_hop():
    rng = random.Random(0)
    wave = np.arange(10_000, dtype=np.float32)
    for _ in range(20):
        c = crop(wave, 1000, rng, hop=320)
        assert len(c) == 1000 and c[0] % 320 == 0
    assert crop(wave, 1000, None)[0] == 0


def test_corrupt_member_skipped_and_counted(tmp_path):
    path = tmp_path / "bad-000000.tar"
    with wds.TarWriter(str(path)) as tw:
        for i in range(6):
            audio = b"definitely not flac" if i in (1, 4) else encode_flac(0.1 * np.ones(3000, np.float32), SR)
            tw.write({"__key__": f"s{i}", "flac": audio, "json": json.dumps({"i": i}).encode()})
        tw.write({"__key__": "noaudio", "json": b"{}"})
    dm = AudioDataModule(str(path), str(path), SR, batch_size=2, segment_samples=1000, batches_per_epoch=2,
                         shuffle_buffer=1)
    keys = [k for b in dm.val_dataloader() for k in b["key"]]
    assert keys == ["s0", "s2", "s3", "s5"]
    assert dm.num_skipped == 3
    assert len(list(dm.train_dataloader())) == 2 and dm.num_skipped > 3


def test_unreadable_training_shards_fail_clearly(tmp_path):
    path = tmp_path / "junk.tar"
    path.write_bytes(b"junk" * 100)
    dm = AudioDataModule(str(path), None, SR, batch_size=2, segment_samples=100, batches_per_epoch=1)
    with pytest.raises(RuntimeError, match="no readable samples"):
        list(dm.train_dataloader())
