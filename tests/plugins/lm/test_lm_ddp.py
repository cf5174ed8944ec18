"""Two CPU processes (gloo) train one LM stage with DDP: different data per rank, identical weights after."""
import json

import lightning as L
import torch
import torch.distributed as dist

from soundstage.plugins.lm.stages import CoarseLMStage

from lm_test_helpers import CODEBOOK, Q, SEM_VOCAB, InMemoryTokens, coarse_config, quick_trainer


class RecordRanks(L.Callback):
    """On every rank: record the first step's loss and a gathered fingerprint of all weights."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir, self.first_loss = out_dir, None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.first_loss is None:
            self.first_loss = float(outputs["loss"])

    def on_train_end(self, trainer, module):
        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, flat)
        record = {"first_loss": self.first_loss, "max_weight_diff": max(float((g - flat).abs().max()) for g in gathered),
                  "weight_sum": float(flat.double().sum())}
        with open(f"{self.out_dir}/rank{trainer.global_rank}.json", "w") as fh:
            json.dump(record, fh)


def test_two_process_ddp_step_keeps_weights_in_sync(tmp_path):
    torch.manual_seed(0)
    stage = CoarseLMStage(coarse_config())
    initial = float(torch.cat([p.detach().flatten() for p in stage.parameters()]).double().sum())
    g = torch.Generator().manual_seed(0)
    data = InMemoryTokens(torch.randint(0, SEM_VOCAB, (4, 10), generator=g),
                          torch.randint(0, CODEBOOK, (4, Q, 20), generator=g), batch_size=2)  # one batch per rank
    trainer = quick_trainer(2, devices=2, strategy="ddp_spawn", callbacks=[RecordRanks(str(tmp_path))])
    trainer.fit(stage, data)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["first_loss"] != ranks[1]["first_loss"]  # each rank saw different tokens
    for r in ranks:
        assert r["max_weight_diff"] == 0.0  # ... yet all-reduced gradients keep the weights identical
    assert ranks[0]["weight_sum"] != initial  # and the step did change them
