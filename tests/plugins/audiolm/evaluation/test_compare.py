"""`soundstage eval-compare A B`: paired differences of two evaluations of the same clips."""
import json
from pathlib import Path

import pytest

from soundstage.cli import main
from soundstage.errors import SoundstageError
from soundstage.plugins.audiolm.evaluation.compare import compare, load_protocol
from soundstage.plugins.audiolm.evaluation.protocol import ProtocolConfig


def _protocol(resyn_edits, clips=24, phones=50, keys=None):
    per_clip = {"codec": {"edits": [10] * clips, "phones": [phones] * clips, "speaker_similarity": [0.7] * clips},
                "resynthesis": {"edits": resyn_edits, "phones": [phones] * clips}}
    rows = {"codec": {"per": 10 / phones, "speaker_similarity": 0.7},
            "resynthesis": {"per": sum(resyn_edits) / (clips * phones)}}
    return {"clips": clips, "clip_keys": keys or [f"u{i}" for i in range(clips)], "rows": rows, "per_clip": per_clip}


def _by_figure(lines):
    return {(line["row"], line["figure"]): line for line in lines}


def test_a_run_against_itself_differs_by_nothing():
    a = _protocol([20, 30] * 12)
    lines = compare(a, a)
    assert lines and all(line["difference"] == 0 and line["interval"] == [0.0, 0.0] for line in lines)


def test_a_shift_on_every_clip_is_resolved_and_a_reshuffle_is_not():
    a = _protocol([20, 30] * 12)
    worse = _by_figure(compare(a, _protocol([25, 35] * 12)))[("resynthesis", "per")]
    assert worse["difference"] == pytest.approx(0.1) and worse["resolved"] is True
    assert worse["interval"] == pytest.approx([0.1, 0.1])  # the same shift on every clip: paired, no spread
    # the same edits moved between clips: the same total, and the clips cannot tell the two apart
    swapped = _by_figure(compare(a, _protocol([30, 20] * 12)))[("resynthesis", "per")]
    assert swapped["difference"] == pytest.approx(0) and swapped["resolved"] is False


def test_evaluations_of_other_clips_are_refused():
    with pytest.raises(SoundstageError, match="different clips"):
        compare(_protocol([20] * 24), _protocol([20] * 16, clips=16))
    with pytest.raises(SoundstageError, match="different clips"):
        compare(_protocol([20] * 24), _protocol([20] * 24, keys=[f"v{i}" for i in range(24)]))


def test_the_command_prints_the_table_and_refuses_an_old_eval_in_one_line(tmp_path, capsys):
    for name, edits in (("a", [20, 30] * 12), ("b", [25, 35] * 12)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps({"protocol": _protocol(edits)}))
    assert main(["eval-compare", str(tmp_path / "a"), str(tmp_path / "b" / "eval.json")]) == 0
    out = capsys.readouterr().out
    assert "resynthesis" in out and "+0.100 [+0.100, +0.100]  resolved" in out

    (tmp_path / "old.json").write_text(json.dumps({"protocol": {"rows": {}, "clips": 16}}))
    assert main(["eval-compare", str(tmp_path / "a"), str(tmp_path / "old.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no per-clip figures" in err[0]


def test_the_shipped_reference_evaluation_is_whole_and_pairs_with_a_run():
    """docs/reference/speech_small.eval.json: the README's measured run, kept so a user's run is compared clip by clip."""
    reference = Path(__file__).resolve().parents[4] / "docs" / "reference" / "speech_small.eval.json"
    protocol = load_protocol(reference)
    assert protocol["clips"] == ProtocolConfig().num_clips == len(protocol["clip_keys"])
    for row in ("original", "codec", "resynthesis"):  # each table figure is what its clips add up to
        clips = protocol["per_clip"][row]
        assert len(clips["edits"]) == protocol["clips"]
        assert protocol["rows"][row]["per"] == pytest.approx(sum(clips["edits"]) / sum(clips["phones"]))
    lines = compare(protocol, protocol)
    assert len(lines) >= 8 and all(line["difference"] == 0 for line in lines)
