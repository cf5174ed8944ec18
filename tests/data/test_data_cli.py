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
