"""Two CPU processes (gloo) train SoundStorm with DDP: different data per rank, identical weights after."""
import json

import torch

from soundstage.plugins.soundstorm.stage import SoundStormStage

from soundstorm_test_helpers import CODEBOOK, Q, SEM_VOCAB, InMemoryTokens, RecordRanks, quick_trainer, soundstorm_config


def test_two_process_ddp_step_keeps_replicas_equal(tmp_path):
    torch.manual_seed(0)
    stage = SoundStormStage(soundstorm_config())
    initial = float(torch.cat([p.detach().flatten() for p in stage.parameters()]).double().sum())
    g = torch.Generator().manual_seed(0)
    data = InMemoryTokens(torch.randint(0, SEM_VOCAB, (4, 10), generator=g),
                          torch.randint(0, CODEBOOK, (4, Q, 20), generator=g), batch_size=2)  # one batch per rank
    trainer = quick_trainer(2, devices=2, strategy="ddp_spawn", callbacks=[RecordRanks(str(tmp_path))])
    trainer.fit(stage, data)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["first_loss"] != ranks[1]["first_loss"]  # each rank saw different tokens (and masks)
    for r in ranks:
        assert r["max_weight_diff"] == 0.0  # ... yet all-reduced gradients keep the replicas identical
    assert ranks[0]["weight_sum"] != initial  # and the steps did change them
