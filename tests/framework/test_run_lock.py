"""One run per run directory: a second run fails at once naming the holder; a dead holder's lock is taken over.

Real processes throughout (the CLI in subprocesses); multi-rank sharing of one job's lock is covered
by tests/scale/test_multinode.py, whose two torchrun ranks run into one directory.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from soundstage.run_lock import LOCK_FILE, RunDirBusyError, RunDirLock, lock_holder

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _cli(run_dir, *extra):
    return [sys.executable, "-m", "soundstage.cli", "run", "toy", "--run-dir", str(run_dir), "--stages", "first",
            "trainer.enable_progress_bar=false", "trainer.checkpoint_every_n_steps=5", *extra]


def _wait_for_holder(run_dir, proc, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        holder = lock_holder(run_dir)
        if holder and holder.get("pid") == proc.pid and (run_dir / "first" / "checkpoints" / "last.ckpt").exists():
            return holder
        time.sleep(0.05)
    raise AssertionError("the first run never held the lock while training")


def test_second_run_into_the_same_dir_fails_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    # a run that would take over an hour: it is killed below, whatever the speed of this machine
    first = subprocess.Popen(_cli(run_dir, "trainer.max_steps=100000", "stages.first.config.step_delay_s=0.05"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    try:
        _wait_for_holder(run_dir, first)
        same_command = _cli(run_dir, "trainer.max_steps=100000", "stages.first.config.step_delay_s=0.05")
        second = subprocess.run(same_command, capture_output=True, text=True, env=ENV,
                                timeout=900)
        assert first.poll() is None, "the first run ended before the second one tried"
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: run directory {run_dir} is in use by PID {first.pid}")
        assert "first=" not in second.stdout  # it trained nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the holder died without releasing anything: its lock file stays, and is stale
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == first.pid
    assert lock_holder(run_dir) is None
    third = subprocess.run(_cli(run_dir, "trainer.max_steps=20", "stages.first.config.step_delay_s=0.05"),
                           capture_output=True, text=True, env=ENV, timeout=900)
    assert third.returncode == 0, third.stderr
    assert f"lock of PID {first.pid} (no longer running) taken over" in third.stdout
    assert "first=resumed" in third.stdout
    assert lock_holder(run_dir) is None and (run_dir / LOCK_FILE).read_text() == ""  # released at the end


def test_lock_is_exclusive_between_processes_and_released_on_exit(tmp_path):
    script = (f"import sys; from soundstage.run_lock import RunDirLock; lock = RunDirLock({str(tmp_path)!r}).acquire(); "
              "print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusyError, match=f"in use by PID {holder.pid} on "):
            RunDirLock(tmp_path).acquire()
    finally:
        holder.communicate("")  # EOF: the holder exits normally
    with RunDirLock(tmp_path) as lock:
        assert lock.previous["pid"] == holder.pid  # it exited without release(): the OS freed the lock
        assert lock_holder(tmp_path)["pid"] == os.getpid()
    assert lock_holder(tmp_path) is None
