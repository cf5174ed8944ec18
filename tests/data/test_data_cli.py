"""`soundstage data ...` through the real CLI entry point."""
import json

import numpy as np
import soundfile as sf

from soundstage.cli import main


def test_data_commands(tmp_path, capsys):
    assert main(["data", "music", str(tmp_path / "music"), "--hours", "0.003", "--sample-rate", "8000"]) == 0
    assert "val: 1 samples" in capsys.readouterr().out

    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "tone.wav", 0.2 * np.sin(np.arange(8000) / 5.0), 8000)
    (folder / "bad.flac").write_bytes(b"nope")
    assert main(["data", "shard", str(folder), str(tmp_path / "sh"), "--sample-rate", "8000"]) == 0
    out = capsys.readouterr().out
    assert "1 samples" in out and "unreadable" in out and "bad.flac" in out

    assert main(["data", "info", str(tmp_path / "sh"), "--scan"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 1 and info["members"] == {"flac": 1, "json": 1} and info["errors"] == 0

    assert main(["data", "info", str(tmp_path / "missing")]) == 2
    assert "do not exist" in capsys.readouterr().err


def test_info_exits_non_zero_for_shards_without_usable_samples(tmp_path, capsys):
    import tarfile

    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "meta-000000.tar")) as tw:  # samples with metadata only, no audio
        tw.write({"__key__": "a", "json": b"{}"})
    assert main(["data", "info", str(tmp_path / "meta-000000.tar")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no audio or token member in any sample (members: json)" in err[0]

    with tarfile.open(tmp_path / "empty-000000.tar", "w"):
        pass
    assert main(["data", "info", str(tmp_path / "empty-000000.tar")]) == 2
    assert capsys.readouterr().err.strip().endswith("no samples")

    truncated = tmp_path / "cut-000000.tar"
    with wds.TarWriter(str(truncated)) as tw:
        for i in range(4):
            tw.write({"__key__": f"k{i}", "flac": bytes(5000), "json": b"{}"})
    truncated.write_bytes(truncated.read_bytes()[:12000])
    assert main(["data", "info", str(truncated)]) == 2
    assert "read error(s)" in capsys.readouterr().err


def test_corpus_commands_refuse_bad_sizes_in_one_line(tmp_path, capsys):
    for args, message in ((["--hours", "0"], "--hours must be finite and > 0, got 0.0"),
                          (["--hours", "nan"], "--hours must be finite and > 0, got nan"),
                          (["--hours", "0.01", "--val-fraction", "1"], "--val-fraction must be within [0, 1)")):
        assert main(["data", "speech", str(tmp_path / "c"), *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
