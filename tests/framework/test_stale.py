"""A done stage is reused only while everything it was made from is unchanged (real toy-recipe runs).

The chain is first -> second -> third (a third toy stage added by overrides), so a change at the
top must reach every stage below it, directly or not.
"""
import json

import pytest

from soundstage.cli import main
from soundstage.errors import SoundstageError
from soundstage.fingerprint import differences
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

CHAIN = [
    "trainer.enable_progress_bar=false", "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=100",
    "stages.second.trainer.max_steps=4",
    "stages.third.plugin=toy_regressor", "stages.third.needs=[second]", "stages.third.config.init_from_upstream=true",
    "stages.third.trainer.max_steps=3",
]


def _run(run_dir, *overrides, stages=None, restart=()):
    runner = PipelineRunner(load_recipe("toy", CHAIN + list(overrides)), run_dir, log=lambda m: None)
    return {r.name: r.status for r in runner.run(stages, restart=restart)}


@pytest.fixture
def done_chain(tmp_path):
    run_dir = tmp_path / "run"
    assert _run(run_dir) == {"first": "trained", "second": "trained", "third": "trained"}
    return run_dir


def test_retraining_upstream_makes_every_dependent_stage_stale(done_chain, capsys):
    """The issue's case: --restart an upstream stage with a changed trainer setting, then run everything."""
    assert _run(done_chain, "stages.first.trainer.max_steps=8", stages=["first"], restart=["first"]) == {"first": "trained"}
    with pytest.raises(SoundstageError) as err:
        _run(done_chain, "stages.first.trainer.max_steps=8")
    message = str(err.value)
    assert "2 stage(s)" in message and "\n" not in message
    assert "second (the output of 'first' it was made from changed)" in message
    assert "third (needs 'second', which is stale)" in message
    assert "--restart second,third" in message
    # the dry run says the same, stage by stage, and changes nothing
    before = (done_chain / "second" / "done.json").read_text()
    code = main(["run", "toy", "--run-dir", str(done_chain), "--dry-run", *CHAIN, "stages.first.trainer.max_steps=8"])
    out = capsys.readouterr()
    assert code == 2 and "are stale" in out.err
    rows = {line.split()[0]: line.split()[1] for line in out.out.splitlines()[1:]}
    assert rows == {"first": "skip", "second": "stale", "third": "stale"}
    assert (done_chain / "second" / "done.json").read_text() == before
    statuses = _run(done_chain, "stages.first.trainer.max_steps=8", restart=["second", "third"])
    assert statuses == {"first": "skipped", "second": "trained", "third": "trained"}


def test_restarting_upstream_refuses_before_anything_is_removed(done_chain):
    with pytest.raises(SoundstageError, match=r"second \(needs 'first', which this run rebuilds\); "
                                              r"third \(needs 'second', which is stale\).*--restart first,second,third"):
        _run(done_chain, restart=["first"])
    assert (done_chain / "first" / "done.json").is_file()  # nothing was forgotten
    assert _run(done_chain) == {"first": "skipped", "second": "skipped", "third": "skipped"}


@pytest.mark.parametrize("override, reason", [
    ("stages.first.trainer.max_steps=7", "trainer keys changed: max_steps"),
    ("trainer.gradient_clip_val=0.5", "trainer keys changed: gradient_clip_val"),
    ("seed=1", "seed 0 -> 1"),
    ("stages.first.config.lr=0.01", "config keys changed: lr"),
])
def test_result_changing_settings_make_a_stage_and_its_dependents_stale(done_chain, override, reason):
    with pytest.raises(SoundstageError, match="stale: first \\(" + reason + ".*second \\(needs 'first', which is stale\\)"):
        _run(done_chain, override)


def test_settings_that_do_not_change_the_result_keep_stages_done(done_chain):
    quiet = ["trainer.log_every_n_steps=1", "trainer.checkpoint_every_n_steps=2", "trainer.enable_progress_bar=true",
             "trainer.num_threads=1", "trainer.limit_val_batches=0.5"]
    assert set(_run(done_chain, *quiet).values()) == {"skipped"}


def test_a_replaced_upstream_model_file_makes_dependents_stale(done_chain):
    model = done_chain / "first" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(SoundstageError, match=r"second \(the output of 'first' it was made from changed\)"):
        _run(done_chain)


def test_done_markers_from_before_recorded_inputs_are_stale(done_chain):
    done_file = done_chain / "first" / "done.json"
    done = json.loads(done_file.read_text())
    for key in ("inputs", "fingerprint_version", "product_files"):
        done.pop(key)
    done_file.write_text(json.dumps(done))
    with pytest.raises(SoundstageError, match=r"first \(its done marker predates recorded inputs"):
        _run(done_chain)


def test_an_unselected_stale_stage_is_not_refused_but_reported(done_chain):
    """--stages first: second and third are stale afterwards but not used, so they do not block."""
    assert _run(done_chain, "stages.first.config.frequency=2.0", stages=["first"], restart=["first"]) == {"first": "trained"}
    logged = []
    runner = PipelineRunner(load_recipe("toy", CHAIN + ["stages.first.config.frequency=2.0"]), done_chain, log=logged.append)
    assert [r.status for r in runner.run(["first"])] == ["skipped"]
    assert "[second] not used by this run; stale: the output of 'first' it was made from changed" in logged


def test_dry_run_lists_actions_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "fresh"
    assert main(["run", "toy", "--run-dir", str(run_dir), "--dry-run", *CHAIN]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"dry run: {run_dir}"
    assert [line.split()[:2] for line in out[1:]] == [["first", "train"], ["second", "train"], ["third", "train"]]
    assert not run_dir.exists()


def test_differences_name_plugin_version_changes():
    old = {"plugin": "p", "plugin_version": "pkg==1.0", "config": {}, "trainer": {}, "seed": 0, "checkpoint": None,
           "upstream": {}}
    assert differences(old, {**old, "plugin_version": "pkg==1.1"}) == ["plugin version pkg==1.0 -> pkg==1.1"]
    assert differences(old, dict(old)) == []


def test_the_dataset_a_stage_read_is_part_of_its_inputs(tmp_path):
    from soundstage.fingerprint import data_inputs

    shard = tmp_path / "train-000000.tar"
    shard.write_bytes(b"x" * 1000)
    recipe = load_recipe("speech_tiny", [f"data.train_shards={shard}"])
    before = data_inputs(recipe)
    assert before["shard_sizes"].startswith("1 shards, sha256 ")
    assert data_inputs(load_recipe("speech_tiny", [f"data.train_shards={shard}", "data.num_workers=3"])) == before
    shard.write_bytes(b"x" * 2000)  # re-sharded data
    after = data_inputs(recipe)
    assert differences({**_inputs(before)}, _inputs(after)) == ["data keys changed: shard_sizes"]
    hours = data_inputs(load_recipe("speech_tiny", ["data.hours=0.1"]))
    assert differences(_inputs(data_inputs(load_recipe("speech_tiny"))), _inputs(hours)) == ["data keys changed: hours"]


def _inputs(data):
    return {"plugin": "p", "plugin_version": "v", "config": {}, "trainer": {}, "seed": 0, "checkpoint": None,
            "upstream": {}, "data": data}


def _interrupted(tmp_path, *overrides):
    """A run dir whose 'first' and 'second' are done and whose 'third' stopped part-way (last.ckpt, no done.json)."""
    run_dir = tmp_path / "run"
    _run(run_dir, *overrides)
    (run_dir / "third" / "done.json").unlink()
    (run_dir / "third" / "model.safetensors").unlink()
    return run_dir


def test_an_interrupted_stage_resumes_only_from_what_it_was_started_with(tmp_path):
    run_dir = _interrupted(tmp_path)
    # a longer budget is what resuming is for; a different config is not
    with pytest.raises(SoundstageError, match=r"third \(interrupted training: config keys changed: frequency\)"):
        _run(run_dir, "stages.third.config.frequency=2.0")
    assert _run(run_dir, "stages.third.trainer.max_steps=5") == {"first": "skipped", "second": "skipped", "third": "resumed"}


def test_an_interrupted_stage_whose_upstream_is_retrained_is_stale(tmp_path):
    run_dir = _interrupted(tmp_path)
    with pytest.raises(SoundstageError, match=r"third \(its interrupted training used 'second', which this run rebuilds\)"
                                              r"; retrain them with --restart second,third"):
        _run(run_dir, restart=["second"])
    assert (run_dir / "third" / "checkpoints" / "last.ckpt").is_file()  # refused before anything was removed


def test_a_config_field_added_since_at_its_default_keeps_finished_stages_done(done_chain):
    """The last stage's marker as written before ``step_delay_s`` existed (by an older soundstage)."""
    from soundstage.fingerprint import fingerprint

    done_file = done_chain / "third" / "done.json"
    done = json.loads(done_file.read_text())
    del done["inputs"]["config"]["step_delay_s"]
    done["fingerprint"] = fingerprint(done["inputs"])
    done_file.write_text(json.dumps(done))
    assert _run(done_chain) == {"first": "skipped", "second": "skipped", "third": "skipped"}
    # set away from its default, the new field is a change like any other
    with pytest.raises(SoundstageError, match=r"third \(config keys changed: step_delay_s\)"):
        _run(done_chain, "stages.third.config.step_delay_s=0.01")
