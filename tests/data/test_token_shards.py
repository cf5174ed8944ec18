"""Token shards: round trip through tar, aligned window crops across streams, TokenDataModule batches."""
import random
from collections import Counter

import numpy as np
import pytest
import torch
import webdataset as wds

from soundstage.data.token_datamodule import TokenDataModule
from soundstage.data.token_shards import TokenShardWriter, crop_aligned, decode_token_sample, window_lengths

Q = 4


def _sample(seconds: float, sem_rate=25.0, ac_rate=50.0):
    ts, ta = int(seconds * sem_rate), int(seconds * ac_rate)
    # token value = frame index, so alignment is checkable: acoustic frame 2k <-> semantic frame k
    semantic = np.arange(ts) % 500
    acoustic = np.stack([np.arange(ta) % 1000 + q for q in range(Q)])
    meta = {"duration": seconds, "sample_rate": 16000, "semantic_rate": sem_rate, "acoustic_rate": ac_rate,
            "codebook_size": 1024, "semantic_vocab_size": 500}
    return semantic, acoustic, meta


@pytest.fixture(scope="module")
def token_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    keys = []
    for split, n in (("train", 9), ("val", 7)):
        w = TokenShardWriter(out / split, "r0", max_bytes=3000)
        for i in range(n):
            sem, ac, meta = _sample(1.0 + 0.3 * i)
            w.write(f"{split}{i}", meta, semantic=sem, acoustic=ac)
            keys.append(f"{split}{i}")
        assert len(w.close()) >= 2
    return out, keys


def test_round_trip(token_shards):
    out, _ = token_shards
    samples = list(wds.WebDataset(str(out / "train" / "r0-000000.tar"), shardshuffle=False))
    item = decode_token_sample(samples[0], ("semantic", "acoustic"))
    sem, ac, meta = _sample(1.0)
    assert np.array_equal(item["semantic"], sem) and np.array_equal(item["acoustic"], ac)
    assert item["meta"]["key"] == "train0" and item["meta"]["acoustic_rate"] == 50.0
    assert item["acoustic"].dtype == np.int64


@pytest.mark.parametrize("rates", [(25.0, 50.0), (50.0, 75.0), (50.0, 50.0)])
def test_aligned_crop(rates):
    sem, ac, meta = _sample(3.0, *rates)
    item = {"key": "k", "meta": meta, "semantic": sem, "acoustic": ac}
    rng = random.Random(0)
    for _ in range(10):
        c = crop_aligned(item, window_lengths({"semantic": rates[0], "acoustic": rates[1]}, 0.8), rng)
        t_sem = c["semantic"][0] / rates[0]
        t_ac = c["acoustic"][0, 0] / rates[1]
        assert abs(t_sem - t_ac) < 1e-9  # both windows start at the same time
        assert abs(c["semantic"].shape[-1] / rates[0] - c["acoustic"].shape[-1] / rates[1]) < 1e-9
        assert c["acoustic"].shape[0] == Q


def test_one_window_length_for_every_stream_and_a_window_that_is_not_one_span_is_refused():
    assert window_lengths({"semantic": 25.0, "acoustic": 50.0}, 4.0) == {"semantic": 100, "acoustic": 200}
    assert window_lengths({"semantic": 50.0, "acoustic": 75.0}, 0.1) == {"semantic": 4, "acoustic": 6}  # 2 steps of 1/25 s
    assert window_lengths({"semantic": 25.0}, 0.01) == {"semantic": 1}  # at least one step
    sem, ac, meta = _sample(3.0, 25.0, 50.0)
    item = {"key": "k", "meta": meta, "semantic": sem, "acoustic": ac}
    with pytest.raises(ValueError, match="not one span of time"):
        crop_aligned(item, {"semantic": 20, "acoustic": 41}, None)


def test_token_datamodule_ranks_and_windows(token_shards):
    out, keys = token_shards
    seen = Counter()
    for rank in (0, 1):
        dm = TokenDataModule(str(out / "train"), str(out / "val"), batch_size=2,
                             window=window_lengths({"semantic": 25.0, "acoustic": 50.0}, 0.8),
                             num_workers=2, batches_per_epoch=3, shuffle_buffer=3, seed=0)
        dm.rank, dm.world_size = rank, 2
        batches = list(dm.train_dataloader())
        assert len(batches) == 3
        for b in batches:
            assert b.tokens["semantic"].shape == (2, 20) and b.tokens["acoustic"].shape == (2, Q, 40)
            assert b.lengths["semantic"].tolist() == [20, 20] and b.lengths["acoustic"].tolist() == [40, 40]
        for b in dm.val_dataloader():
            seen.update(b.keys)
            assert b.tokens["semantic"][:, 0].eq(0).all()  # validation windows start at the beginning
    assert set(seen) == {k for k in keys if k.startswith("val")} and set(seen.values()) == {1}


def test_whole_sequences_are_padded(token_shards):
    out, _ = token_shards
    dm = TokenDataModule(str(out / "val"), None, batch_size=7, streams=("acoustic",), batches_per_epoch=1)
    dm.rank, dm.world_size = 0, 1
    b = next(iter(dm.train_dataloader()))
    assert "semantic" not in b.tokens and b.tokens["acoustic"].shape[0] == 7 == len(b)
    n = b.lengths["acoustic"]
    assert b.tokens["acoustic"].shape[-1] == int(n.max()) and (n != n[0]).any()
    for row, length in zip(b.tokens["acoustic"], n):
        assert not row[:, length:].any()
    assert [r["acoustic"].shape[-1] for r in b.rows()] == n.tolist()  # rows come back without their padding


def test_a_token_batch_pads_once_and_gives_its_rows_back_unpadded():
    from soundstage.data.token_batch import TokenBatch

    rows = [{"semantic": torch.tensor([1, 2, 3]), "acoustic": torch.arange(12).view(2, 6)},
            {"semantic": torch.tensor([4]), "acoustic": torch.arange(4).view(2, 2)}]
    b = TokenBatch.of(rows, keys=["a", "b"])
    assert b.tokens["semantic"].tolist() == [[1, 2, 3], [4, 0, 0]] and b.tokens["acoustic"].shape == (2, 2, 6)
    assert b.lengths["acoustic"].tolist() == [6, 2] and len(b) == 2 and b.head(1).keys == ["a"]
    for got, want in zip(b.rows(), rows):
        assert all(torch.equal(got[s], want[s]) for s in want)
    with pytest.raises(ValueError, match="acoustic tokens of 'b' have shape"):
        TokenBatch.of([rows[0], {"semantic": torch.tensor([4]), "acoustic": torch.zeros(3, 2)}], keys=["a", "b"])
