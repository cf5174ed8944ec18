"""``soundstage run --reuse-from OLD``: a new run takes OLD's finished stages that its recipe would make the
same and trains the rest (real toy-recipe runs: first -> second -> third)."""
import json
import os

import pytest

from soundstage.cli import main
from soundstage.errors import SoundstageError
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

CHAIN = [
    "trainer.enable_progress_bar=false", "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=100",
    "stages.second.trainer.max_steps=4",
    "stages.third.plugin=toy_regressor", "stages.third.needs=[second]", "stages.third.config.init_from_upstream=true",
    "stages.third.trainer.max_steps=3",
]


def _runner(run_dir, *overrides):
    return PipelineRunner(load_recipe("toy", CHAIN + list(overrides)), run_dir, log=lambda m: None)


def _run(run_dir, *overrides, reuse_from=None, restart=()):
    runner = _runner(run_dir, *overrides)
    results = {r.name: r.status for r in runner.run(restart=restart, reuse_from=reuse_from)}
    return results, runner


@pytest.fixture
def old_run(tmp_path):
    run_dir = tmp_path / "old"
    assert _run(run_dir)[0] == {"first": "trained", "second": "trained", "third": "trained"}
    return run_dir


def test_a_changed_last_stage_reuses_its_upstream_and_the_branch_is_consistent(old_run, tmp_path):
    new = tmp_path / "new"
    before = {p: p.read_bytes() for p in old_run.rglob("done.json")}
    statuses, runner = _run(new, "stages.third.trainer.max_steps=5", reuse_from=old_run)
    assert statuses == {"first": "reused", "second": "reused", "third": "trained"}
    # hard links into the old run (same file system), which is left as it was
    model = "second/model.safetensors"
    assert os.stat(new / model).st_ino == os.stat(old_run / model).st_ino
    assert {p: p.read_bytes() for p in old_run.rglob("done.json")} == before
    # the branch's marker caches its files' hashes under its own paths (no re-reading them)
    cached = json.loads((new / "second" / "done.json").read_text())["product_files"]
    assert cached and all(k.startswith(str(new)) for k in cached)
    # the branch stands on its own: run again without --reuse-from, nothing is stale or retrained
    assert _run(new, "stages.third.trainer.max_steps=5")[0] == {"first": "skipped", "second": "skipped", "third": "skipped"}
    # and forgetting a reused stage there removes only the branch's links
    _run(new, "stages.third.trainer.max_steps=5", restart=["second", "third"])
    assert (old_run / model).is_file() and (old_run / "second" / "done.json").read_bytes() == before[old_run / "second" / "done.json"]


def test_a_changed_upstream_stage_is_trained_with_everything_after_it(old_run, tmp_path):
    statuses, runner = _run(tmp_path / "new", "stages.second.trainer.max_steps=5", reuse_from=old_run)
    assert statuses == {"first": "reused", "second": "trained", "third": "trained"}


def test_dry_run_shows_what_is_reused_and_why_not_and_writes_nothing(old_run, tmp_path, capsys):
    new = tmp_path / "new"
    code = main(["run", "toy", "--run-dir", str(new), "--reuse-from", str(old_run), "--dry-run", *CHAIN,
                 "stages.second.config.hidden=16"])
    out = capsys.readouterr().out
    assert code == 0 and not new.exists()
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows["first"].split()[1] == "reuse" and f"from {old_run}" in rows["first"]
    assert rows["second"].split()[1] == "train" and "not reused: config keys changed: hidden" in rows["second"]
    assert rows["third"].split()[1] == "train" and "not reused: needs 'second', which is not reused" in rows["third"]


def test_restarted_stages_and_their_dependents_are_not_reused(old_run, tmp_path):
    statuses, _ = _run(tmp_path / "new", reuse_from=old_run, restart=["second"])
    assert statuses == {"first": "reused", "second": "trained", "third": "trained"}


def test_a_stage_trained_again_in_the_branch_is_kept_and_what_was_made_from_the_other_is_not_reused(old_run, tmp_path):
    new = tmp_path / "new"
    _runner(new).run(["first"])  # its own first: another model file than the old run's
    runner = _runner(new)
    runner.run(dry_run=True, reuse_from=old_run)
    assert runner.statuses["second"].action == "train"
    assert "not reused: its 'first' here differs from there" in runner.statuses["second"].reasons
    statuses, _ = _run(new, reuse_from=old_run)
    assert statuses == {"first": "skipped", "second": "trained", "third": "trained"}


def test_an_unfinished_stage_in_the_branch_is_not_overwritten(old_run, tmp_path):
    new = tmp_path / "new"
    (new / "second" / "checkpoints").mkdir(parents=True)
    runner = _runner(new)
    runner.run(dry_run=True, reuse_from=old_run)
    assert runner.statuses["first"].action == "reuse"
    assert runner.statuses["second"].action == "train"
    assert "not reused: an unfinished folder of it is here" in runner.statuses["second"].reasons


@pytest.mark.parametrize("which", ["same", "missing"])
def test_a_bad_reuse_directory_is_one_line(old_run, tmp_path, which):
    source = old_run if which == "same" else tmp_path / "nowhere"
    target = old_run if which == "same" else tmp_path / "new"
    with pytest.raises(SoundstageError, match="--reuse-from .*(this run's own directory|no such run directory)"):
        _run(target, reuse_from=source)
