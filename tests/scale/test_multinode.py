"""A real 2-node job on this machine: two torchrun launchers (node rank 0 and 1) over gloo on CPU.

It trains the tiny codec, k-means semantic tokenizer, tokenize job and semantic LM for a few steps
on uneven shards (6, 3 and 9 samples for 2 ranks; one validation shard), and checks that the job
ends cleanly, that every trained stage ended with identical weights on both ranks and that the
ranks drew their training samples from disjoint shards.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scale_helpers import free_port, write_tone_shards

STAGES = ("codec", "semantic", "tokens", "semantic_lm")
TRAINED = ("codec", "semantic", "semantic_lm")

RECIPE = """\
defaults: [speech_tiny]
name: multinode_tiny
shared: {semantic_vocab: 16}
trainer: {accelerator: cpu, devices: 1, num_nodes: 2, strategy: ddp, enable_progress_bar: false,
          log_every_n_steps: 1, limit_val_batches: 2}
stages:
  codec:
    config: {batch_size: 2, batches_per_epoch: 3, channels: 4, decoder_channels: 4,
             mel_ffts: [256, 512], mel_bins: [20, 40]}
    trainer: {max_steps: 6}
  semantic:
    config: {batch_size: 2, segment_seconds: 1.0, init_batches: 2, batches_per_epoch: 3, val_max_items: 4}
    trainer: {max_steps: 3}
  tokens:
    config: {batch_size: 4}
  semantic_lm:
    config:
      window_seconds: 1.0
      model: {d_model: 32, n_layer: 1, n_head: 2, block_size: 32}
      batch_size: 2
      batches_per_epoch: 3
    trainer: {max_steps: 4}
"""

# The CLI's main with the soundstage loggers at INFO, so each rank's shard split is printed.
DRIVER = """\
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
logging.getLogger("soundstage").setLevel(logging.INFO)
from soundstage.cli import main
sys.exit(main())
"""
SPLIT_LINE = re.compile(r"rank (\d)/2 worker 0/1 draws training samples from (.+)$", re.M)


def _launch(tmp_path: Path, node_rank: int, port: int, train: list[str], val: list[str]) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--node-rank", str(node_rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
        str(tmp_path / "driver.py"), "run", str(tmp_path / "recipe.yaml"), "--run-dir", str(tmp_path / "run"),
        "--stages", ",".join(STAGES),
        "trainer.num_nodes=2", "trainer.devices=1", "trainer.strategy=ddp", "trainer.accelerator=cpu",
        f"data.train_shards={'::'.join(train)}", f"data.val_shards={'::'.join(val)}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / f"node{node_rank}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.5)
    codes = [p.poll() for p in procs]
    for p in procs:  # a hang: end the whole launcher session (torchrun and its worker)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return codes


@pytest.mark.slow
def test_two_nodes_train_in_sync_on_disjoint_uneven_shards(tmp_path):
    train = write_tone_shards(tmp_path / "shards" / "train", "tr", [6, 3, 9], seed=0)
    val = write_tone_shards(tmp_path / "shards" / "val", "va", [4], seed=1)  # fewer val shards than ranks
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "driver.py").write_text(DRIVER)
    port = free_port()
    procs = [_launch(tmp_path, r, port, train, val) for r in (0, 1)]
    codes = _wait_all(procs, timeout=240)
    logs = [(tmp_path / f"node{r}.log").read_text() for r in (0, 1)]
    assert codes == [0, 0], f"exit codes {codes} (None = hung and killed)\n--- node 0\n{logs[0][-3000:]}\n--- node 1\n{logs[1][-3000:]}"
    assert "summary: codec=trained, semantic=trained, tokens=ran, semantic_lm=trained" in logs[0]

    run = tmp_path / "run"
    for stage in TRAINED:  # the runner all-gathers a weight checksum and raises if the ranks differ
        done = json.loads((run / stage / "done.json").read_text())
        checksums = done["outputs"]["replica_checksums"]
        assert len(checksums) == 2 and all(isinstance(c, float) for c in checksums), stage

    # Each rank logs the shards it draws from, once per training stage (codec, semantic, semantic_lm).
    shares = {r: [set(m.group(2).split()) for m in SPLIT_LINE.finditer(logs[r]) if int(m.group(1)) == r] for r in (0, 1)}
    assert [len(shares[r]) for r in (0, 1)] == [3, 3], shares
    for stage, (mine, theirs) in zip(("codec", "semantic", "semantic_lm"), zip(shares[0], shares[1])):
        assert mine and theirs and not mine & theirs, f"{stage}: ranks share shards {mine & theirs}"
    assert shares[0][0] == {train[0], train[2]} and shares[1][0] == {train[1]}  # rank r: shards r, r + 2, ...
    assert shares[0][0] | shares[1][0] == set(train)
    token_shards = {Path(p).name for s in (shares[0][2], shares[1][2]) for p in s}
    assert token_shards == {"r0-000000.tar", "r1-000000.tar"}  # each rank tokenized into its own shards

    # Tokenize split the single validation shard between the ranks: every sample encoded once.
    val_index = json.loads((run / "tokens" / "tokens" / "val" / "index.json").read_text())
    assert val_index["num_samples"] == 4 and val_index["num_shards"] == 2
    train_index = json.loads((run / "tokens" / "tokens" / "train" / "index.json").read_text())
    assert train_index["num_samples"] == 6 + 3 + 9

