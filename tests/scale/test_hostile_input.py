"""Bad input: each is a clear one-line error or a skip-and-count, never a hang or a traceback.

Covered elsewhere (not repeated here): unknown stage / key / type and `needs` or include cycles
(tests/framework/test_recipe.py, test_dag.py), corrupt members and unreadable tars
(tests/data/test_audio_datamodule.py), pickled checkpoints (tests/framework/test_checkpoint.py),
key sanitising of ingested files (tests/data/test_ingest.py), out-of-range config values and batches
too big for memory (tests/framework/test_ranges.py), unreachable remote shards
(tests/data/test_remote_shards.py), stale stages (tests/framework/test_stale.py), two runs into one
directory (tests/framework/test_run_lock.py), bad `generate` / `export` arguments
(tests/framework/test_generate_cli.py), truncated resume checkpoints and failing checkpoint writes
(tests/framework/test_fault_tolerance.py).
"""
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds

from soundstage.data.audio_datamodule import AudioDataModule
from soundstage.data.audio_io import encode_flac
from soundstage.data.shard_writer import AudioShardWriter
from soundstage.data.stream import ShardReadError
from soundstage.data.token_shards import TokenShardWriter
from soundstage.errors import CheckpointError, SoundstageError
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

from scale_helpers import SR, tone, write_tone_shards

QUIET = dict(log=lambda _m: None)


def _dm(train, val=None, **kw):
    args = dict(sample_rate=SR, batch_size=2, segment_samples=4000, batches_per_epoch=3, shuffle_buffer=1)
    return AudioDataModule(train, val, **(args | kw))


def _empty_tar(path: Path) -> str:
    with tarfile.open(path, "w"):
        pass
    return str(path)


# --- shard URLs ---------------------------------------------------------------------------------
def test_missing_local_shards_fail_before_training_in_one_line(tmp_path):
    missing = tmp_path / "nowhere" / "train-{000000..000003}.tar"
    out = subprocess.run(
        [sys.executable, "-m", "soundstage.cli", "run", "speech_tiny", "--stages", "codec", "--run-dir", str(tmp_path / "run"),
         f"data.train_shards={missing}", f"data.cache_dir={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data.train_shards: 4 shard(s)"), out.stderr
    assert str(tmp_path / "nowhere" / "train-000000.tar") in lines[0]
    assert not (tmp_path / "run" / "codec" / "checkpoints").exists()  # failed before any training


def test_unreachable_remote_shard_is_a_clear_error_naming_it(tmp_path):
    url = f"pipe:cat {tmp_path}/not-there-000000.tar"
    dm = _dm(url)
    with pytest.raises(ShardReadError, match=r"no readable samples in 1 training shards \(e.g. pipe:cat .*not-there") as err:
        list(dm.train_dataloader())
    assert isinstance(err.value, SoundstageError) and "\n" not in str(err.value)  # the CLI prints it as one line
    assert dm.num_skipped > 0


# --- empty, truncated, wrong-rate shards ------------------------------------------------------------
def test_empty_shard_is_skipped_and_only_empty_shards_fail_clearly(tmp_path):
    good = write_tone_shards(tmp_path, "good", [5])[0]
    empty = _empty_tar(tmp_path / "empty-000000.tar")
    dm = _dm(f"{empty}::{good}", f"{empty}::{good}", batches_per_epoch=None, val_segment_samples=0)
    assert len(dm.train_dataloader()) == 5 // 2  # epoch length counts the samples there are
    assert len(list(dm.train_dataloader())) == 2
    assert sorted(k for b in dm.val_dataloader() for k in b["key"]) == [f"good0_{i:03d}" for i in range(5)]
    with pytest.raises(ShardReadError, match="no readable samples"):
        list(_dm(empty).train_dataloader())


def test_truncated_tar_yields_its_complete_samples_and_counts_the_cut(tmp_path):
    path = Path(write_tone_shards(tmp_path, "cut", [6])[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    dm = _dm(str(path), str(path), val_segment_samples=0)
    keys = [k for b in dm.val_dataloader() for k in b["key"]]
    assert 1 <= len(keys) < 6 and keys == [f"cut0_{i:03d}" for i in range(len(keys))]
    assert dm.num_skipped >= 1
    assert len(list(dm.train_dataloader())) == 3  # training still gets its batches from the readable part


def test_audio_at_another_sample_rate_is_resampled(tmp_path):
    """A sample whose FLAC is 8 kHz in a 16 kHz shard is resampled on load (not skipped)."""
    path = tmp_path / "mixed-000000.tar"
    rng = np.random.default_rng(0)
    with wds.TarWriter(str(path)) as tw:
        tw.write({"__key__": "native", "flac": encode_flac(tone(0.5, rng), SR), "json": b"{}"})
        tw.write({"__key__": "eight_khz", "flac": encode_flac(tone(0.5, rng, 8000), 8000), "json": b"{}"})
    dm = _dm(str(path), str(path), val_segment_samples=0)
    batch = next(iter(dm.val_dataloader()))
    assert batch["key"] == ["native", "eight_khz"] and batch["lengths"].tolist() == [SR // 2, SR // 2]
    assert dm.num_skipped == 0


# --- checkpoints given as stages.X.checkpoint -------------------------------------------------------
def _kmeans(tmp_path: Path, vocab_size: int) -> Path:
    from soundstage.plugins.semantic.kmeans_stage import KMeansTokenizerConfig, KMeansTokenizerStage

    stage = KMeansTokenizerStage(KMeansTokenizerConfig(vocab_size=vocab_size, frame_rate=25.0))
    return stage.save_pretrained(tmp_path / f"kmeans{vocab_size}.safetensors")


def test_checkpoint_of_another_stage_is_refused(tmp_path):
    recipe = load_recipe("toy", [f"stages.first.checkpoint={_kmeans(tmp_path, 8)}"])
    with pytest.raises(CheckpointError, match=r"stages.first.checkpoint: .* is a 'kmeans_tokenizer' checkpoint, not 'toy_regressor'"):
        PipelineRunner(recipe, tmp_path / "run", **QUIET).run(["first"])
    assert not (tmp_path / "run" / "first" / "done.json").exists()


def test_checkpoint_with_incompatible_config_is_refused(tmp_path):
    """speech_tiny's LMs are validated against 64 semantic tokens; a 32-cluster tokenizer must not slip in."""
    recipe = load_recipe("speech_tiny", [f"stages.semantic.checkpoint={_kmeans(tmp_path, 32)}"])
    with pytest.raises(CheckpointError, match=r"does not make the tokens stages.semantic.config declares: semantic vocab_size: expects 64, gets 32"):
        PipelineRunner(recipe, tmp_path / "run", **QUIET).run(["semantic"])
    ok = load_recipe("speech_tiny", [f"stages.semantic.checkpoint={_kmeans(tmp_path, 64)}"])
    assert [r.status for r in PipelineRunner(ok, tmp_path / "run", **QUIET).run(["semantic"])] == ["reused-checkpoint"]


def test_checkpoint_that_is_not_a_stage_file_is_refused(tmp_path):
    bad = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, bad)
    recipe = load_recipe("toy", [f"stages.first.checkpoint={bad}"])
    with pytest.raises(CheckpointError, match="not a soundstage safetensors checkpoint"):
        PipelineRunner(recipe, tmp_path / "run", **QUIET).run(["first"])


# --- prompts for generation -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline():
    from soundstage.plugins.audiolm.pipeline import Pipeline

    recipe = load_recipe("speech_tiny")
    roles = {"codec": "codec", "semantic_tokenizer": "semantic", "semantic_lm": "semantic_lm",
             "coarse_lm": "coarse_lm", "fine_lm": "fine_lm"}
    models = {role: recipe.stages[name].stage_class(recipe.stages[name].config).eval() for role, name in roles.items()}
    return Pipeline(models)


def test_stereo_and_other_rate_prompts_are_downmixed_and_resampled(pipeline, tmp_path):
    assert pipeline.sample_rate == 16000
    rng = np.random.default_rng(0)
    left, right = tone(1.0, rng, 44100), tone(1.0, rng, 44100)
    sf.write(tmp_path / "stereo44k.wav", np.stack([left, right], axis=1), 44100)
    wave, sr = sf.read(tmp_path / "stereo44k.wav", dtype="float32", always_2d=True)  # [T, 2]
    prompt = pipeline.prepare_prompt(wave, sr)
    assert prompt.shape == (1, 16000) and prompt.dtype == torch.float32
    channels_first = pipeline.prepare_prompt(torch.from_numpy(wave.T.copy()), sr)  # [2, T]
    torch.testing.assert_close(channels_first, prompt)
    mono8k = pipeline.prepare_prompt(tone(1.0, rng, 8000), 8000)
    assert mono8k.shape == (1, 16000)


@pytest.mark.parametrize(
    "wave, message",
    [
        (np.zeros(16000, np.float32), r"prompt audio is unusable \(all-zero"),
        (np.full(16000, 1e-6, np.float32), r"prompt audio is silent"),
        (tone(0.2, np.random.default_rng(0)), r"prompt audio is unusable \(too-short: 0.200s < 0.5s\)"),
    ],
    ids=["silent", "near-silent", "too-short"],
)
def test_silent_or_short_prompts_are_rejected_clearly(pipeline, wave, message):
    with pytest.raises(SoundstageError, match=message) as err:
        pipeline.prepare_prompt(wave, SR)
    assert "\n" not in str(err.value)


# --- hostile keys ---------------------------------------------------------------------------------
HOSTILE = ["../../escaped", "/tmp/absolute_escape", "a/../../b", "..", "ok/nested"]


def _extract_naively(shard: Path, into: Path) -> list[Path]:
    """What `tar -xf` does with no safety filter: every member at the path its name gives."""
    into.mkdir(parents=True)
    with tarfile.open(shard) as tf:
        names = tf.getnames()
        tf.extractall(into, filter="fully_trusted")
    assert all(not n.startswith("/") and ".." not in Path(n).parts for n in names), names
    return [p for p in into.rglob("*") if p.is_file()]


def test_token_writer_keeps_hostile_keys_inside_the_output_folder(tmp_path):
    writer = TokenShardWriter(tmp_path / "tokens", "r0")
    for key in HOSTILE:
        writer.write(key, {"duration": 1.0, "semantic_rate": 25.0}, semantic=np.arange(25))
    shard = Path(writer.close()[0])
    files = _extract_naively(shard, tmp_path / "x" / "y")
    assert files and all((tmp_path / "x" / "y") in f.parents for f in files)
    assert not list(tmp_path.glob("escaped*")) and not list((tmp_path / "x").glob("b*"))
    metas = [json.loads(f.read_text()) for f in files if f.name.endswith(".json")]
    assert sorted(m["key"] for m in metas) == sorted(["escaped", "tmp/absolute_escape", "a/b", "_", "ok/nested"])


def test_audio_writer_keeps_hostile_keys_inside_the_output_folder(tmp_path):
    writer = AudioShardWriter(tmp_path / "audio", SR, resume=False)
    rng = np.random.default_rng(0)
    for key in HOSTILE:
        writer.write(key, tone(0.1, rng), {})
    index = writer.close()
    files = _extract_naively(tmp_path / "audio" / index["shards"][0]["name"], tmp_path / "x" / "y")
    assert len(files) == 2 * len(HOSTILE) and all((tmp_path / "x" / "y") in f.parents for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "x"]
