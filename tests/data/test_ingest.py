"""`data shard`: mixed formats and planted bad files -> readable shards, an index and a skip report."""
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from soundstage.data.ingest import ShardJobConfig, format_report, key_candidates, list_inputs, shard_audio
from soundstage.data.shard_writer import sanitize_key

SR = 8000


def _tone(seconds: float, sr: int, channels: int = 1, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "speaker one" / "deep").mkdir(parents=True)
    sf.write(root / "a.wav", _tone(1.0, 16000), 16000)  # resampled to 8 kHz
    sf.write(root / "a.flac", _tone(0.8, 8000, freq=330), 8000)  # same stem, other format
    sf.write(root / "speaker one" / "b.v2.ogg", _tone(1.2, 22050, channels=2), 22050, format="OGG", subtype="VORBIS")
    sf.write(root / "speaker one" / "deep" / "c.flac", _tone(3.0, 44100, channels=2), 44100)
    # planted bad files
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(root / "empty.wav", np.zeros(0), SR)
    sf.write(root / "silent.wav", np.zeros(SR), SR)
    nan = _tone(0.5, SR).astype(np.float32)
    nan[100] = np.nan
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(root / "short.wav", _tone(0.02, SR), SR)
    sf.write(root / "many_channels.wav", _tone(0.5, SR, channels=10), SR)
    (root / "notes.txt").write_text("not audio, ignored")
    return root


def _read_all(pattern: str) -> dict[str, dict]:
    return {s["__key__"]: s for s in wds.WebDataset(pattern, shardshuffle=False)}


def test_shard_folder_with_bad_files(audio_folder, tmp_path):
    out = tmp_path / "shards"
    cfg = ShardJobConfig(sample_rate=SR, min_seconds=0.1, segment_seconds=1.0, shard_bytes=20_000)
    index = shard_audio(audio_folder, out, cfg, progress=False)

    reasons = {Path(s["source"]).name: s["reason"] for s in index["skipped"]}
    assert reasons == {
        "broken.wav": "unreadable", "empty.wav": "empty", "silent.wav": "all-zero",
        "nan.wav": "non-finite", "short.wav": "too-short", "many_channels.wav": "bad-channels",
    }
    assert "skipped 6 files" in format_report(index)
    assert index["num_shards"] >= 2 and index["sample_rate"] == SR

    samples = _read_all(str(out / index["pattern"]))
    assert len(samples) == index["num_samples"] == sum(s["count"] for s in index["shards"])
    # c.flac (3 s) is cut into three 1 s segments; keys carry no dots and no absolute paths; a name
    # that is not a plain key (a space, a dot) keeps a readable form plus a hash of the whole name
    b, c = key_candidates("speaker one/b.v2.ogg")[0], key_candidates("speaker one/deep/c.flac")[0]
    assert b.startswith("speaker_one/b_v2_") and c.startswith("speaker_one/deep/c_")
    bases = {k.rsplit("_seg", 1)[0] for k in samples}
    assert bases == {"a", "a_wav", b, c}  # a.flac sorts first
    assert {k for k in samples if k.startswith(c)} == {f"{c}_seg{i:04d}" for i in range(3)}
    total = 0.0
    for key, s in samples.items():
        assert "." not in key and not key.startswith("/")
        wave, sr = sf.read(io.BytesIO(s["flac"]))
        meta = json.loads(s["json"])
        assert sr == SR and wave.ndim == 1 and meta["sample_rate"] == SR
        assert abs(len(wave) / sr - meta["duration"]) < 1e-3
        total += meta["duration"]
    assert abs(total - index["total_seconds"]) < 1e-2
    # plain tar can list the shards
    listing = subprocess.run(["tar", "tf", str(out / index["shards"][0]["name"])], capture_output=True, text=True, check=True)
    assert any(line.endswith(".flac") for line in listing.stdout.splitlines())


def test_resume_after_interruption(audio_folder, tmp_path):
    cfg = ShardJobConfig(sample_rate=SR, segment_seconds=0.5, shard_bytes=10_000)
    full = shard_audio(audio_folder, tmp_path / "full", cfg, progress=False)
    assert full["num_shards"] >= 3
    # Simulate a crash after the first shard: later shards gone, progress cut, a partial temp file left.
    out = tmp_path / "full"
    lines = (out / "progress.jsonl").read_text().splitlines()
    (out / "progress.jsonl").write_text(lines[0] + "\n")
    for shard in full["shards"][1:]:
        (out / shard["name"]).unlink()
    (out / "shard-000001.tar.tmp").write_bytes(b"partial")
    resumed = shard_audio(audio_folder, out, cfg, progress=False)
    assert not (out / "shard-000001.tar.tmp").exists()
    assert resumed["num_samples"] == full["num_samples"]
    assert sorted(_read_all(str(out / resumed["pattern"]))) == sorted(_read_all(str(out / full["pattern"])))
    assert len(resumed["skipped"]) == len(full["skipped"])


def test_manifest_and_workers(audio_folder, tmp_path):
    manifest = tmp_path / "m.jsonl"
    rows = [{"path": str(audio_folder / "a.wav"), "text": "hello", "speaker": "s1"},
            {"path": "in/speaker one/deep/c.flac", "text": "world"},
            {"path": "../../etc/passwd"}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    items, unkeyed = list_inputs(manifest)
    assert unkeyed == []
    assert [it.key for it in items] == [sanitize_key(str(audio_folder / "a")), *(
        key_candidates(name)[0] for name in ("in/speaker one/deep/c.flac", "../../etc/passwd"))]
    assert items[2].key.startswith("etc/passwd_")  # no '..' in a key, and not the key of a file named etc/passwd
    index = shard_audio(manifest, tmp_path / "m", ShardJobConfig(sample_rate=SR, num_workers=2), progress=False)
    samples = _read_all(str(tmp_path / "m" / index["pattern"]))
    metas = [json.loads(s["json"]) for s in samples.values()]
    assert sorted(m.get("text", "") for m in metas) == ["hello", "world"]
    assert [s["reason"] for s in index["skipped"]] == ["unreadable"]


def test_sanitize_key():
    assert sanitize_key("/abs/../x.y/z.wav") == "abs/x_y/z_wav"
    assert sanitize_key("..") == "_"


# --- keys of any file name ------------------------------------------------------------------------
UNICODE_NAMES = ["日本.wav", "привет.wav", "Ωμέγα.flac", "日本/語.wav", "a b.wav", "a_b.wav", "a?b.wav", "🎵.wav"]


@pytest.fixture
def unicode_folder(tmp_path: Path) -> Path:
    root = tmp_path / "uni"
    for i, name in enumerate(UNICODE_NAMES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, _tone(0.3, SR, freq=200 + 40 * i), SR)
    (root / "unreadable.wav").write_bytes(b"not audio")
    return root


def test_unicode_names_get_unique_readable_stable_keys(unicode_folder, tmp_path):
    index = shard_audio(unicode_folder, tmp_path / "out", ShardJobConfig(sample_rate=SR), progress=False)
    samples = _read_all(str(tmp_path / "out" / index["pattern"]))
    # every readable file is a sample under its own key; the unreadable one is in the report
    assert len(samples) == index["num_samples"] == len(UNICODE_NAMES)
    assert [Path(s["source"]).name for s in index["skipped"]] == ["unreadable.wav"]
    sources = {Path(json.loads(s["json"])["source"]).relative_to(unicode_folder).as_posix(): k for k, s in samples.items()}
    assert set(sources) == set(UNICODE_NAMES)
    assert sources["a_b.wav"] == "a_b" and sources["a b.wav"].startswith("a_b_")
    assert sources["日本.wav"].startswith("RiBen_") and sources["привет.wav"].startswith("privet_")
    assert sources["日本/語.wav"].startswith("RiBen/Yu_")
    assert all(k == key_candidates(name)[0] for name, k in sources.items())  # stable: a function of the name


def test_relative_and_absolute_input_folders_give_identical_shards(unicode_folder, tmp_path, monkeypatch):
    cfg = ShardJobConfig(sample_rate=SR)
    absolute = shard_audio(unicode_folder, tmp_path / "abs", cfg, progress=False)
    monkeypatch.chdir(unicode_folder.parent)
    relative = shard_audio(unicode_folder.name, "rel", cfg, progress=False)
    assert relative["num_samples"] == absolute["num_samples"] == len(UNICODE_NAMES)
    for a, r in zip(absolute["shards"], relative["shards"]):
        assert (tmp_path / "abs" / a["name"]).read_bytes() == (tmp_path / "rel" / r["name"]).read_bytes()


def test_names_that_differ_only_in_extension_or_spelling_never_share_a_key():
    keys = {}
    for name in ["x.wav", "x.flac", "x.ogg", "x_wav.wav", "x wav.wav"]:
        keys[name] = next(k for k in key_candidates(name) if k not in keys.values())
    assert len(set(keys.values())) == len(keys)


def _cli(*args: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "soundstage.cli", "data", *args], capture_output=True, text=True,
                          timeout=120)


def test_shard_cli_exits_non_zero_when_nothing_was_written(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.wav").write_bytes(b"RIFF junk")
    out = _cli("shard", str(folder), str(tmp_path / "out"))
    assert out.returncode == 2
    assert "x.wav" in out.stdout  # the skip report
    assert out.stderr.strip().splitlines()[-1] == "error: data shard: no sample was written (1 inputs skipped, listed above)"
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("flag, value, key", [("--segment-seconds", "-1", "segment_seconds"),
                                              ("--sample-rate", "0", "sample_rate"), ("--shard-mb", "nan", "shard_bytes")])
def test_shard_cli_range_errors_are_one_line(tmp_path, flag, value, key):
    out = _cli("shard", str(tmp_path), str(tmp_path / "out"), flag, value)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: data shard: {key}: must be"), out.stderr
