"""Two CPU processes (gloo) train one LM stage with DDP: different data per rank, identical weights after."""
import json

import torch

from soundstage.plugins.lm.stages import CoarseLMStage

from lm_test_helpers import CODEBOOK, Q, SEM_VOCAB, InMemoryTokens, RecordRanks, coarse_config, quick_trainer


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
