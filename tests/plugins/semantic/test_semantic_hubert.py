"""A tiny HuBERT: frame contract, masked-prediction loss falls, and clustering its layer in a self-contained tokenizer."""
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from soundstage.plugins.semantic.hubert_model import Hubert, HubertConfig, span_mask
from soundstage.plugins.semantic.hubert_stage import HubertStage, HubertStageConfig
from soundstage.plugins.semantic.kmeans_stage import KMeansTokenizerConfig, KMeansTokenizerStage
from soundstage.plugins.semantic.synthetic import synthetic_corpus
from soundstage.recipe_schema import DataConfig
from soundstage.stage import Stage, StageContext, StageRecord
from soundstage.trainer import TrainerConfig

TINY = dict(conv_dim=32, conv_kernels=[10, 4, 4, 4], conv_strides=[5, 4, 4, 4], dim=48, depth=2, heads=4,
            mlp_ratio=2.0, dropout=0.0, pos_conv_kernel=8, pos_conv_groups=4)


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(16, seconds=1.0, seed=1)


@pytest.fixture(scope="module")
def teacher(corpus):
    """Iteration 0: MFCC k-means at 25 Hz (HuBERT at 50 Hz repeats each target twice)."""
    km = KMeansTokenizerStage(KMeansTokenizerConfig(frame_rate=25.0, vocab_size=8))
    waves = torch.stack([w for w, _ in corpus])
    km.kmeans.fit(km.features(waves).flatten(0, 1), num_iters=20, generator=torch.Generator().manual_seed(0))
    return km.eval()


def ctx_with(tmp_path, upstream):
    return StageContext(name="s", stage_dir=tmp_path, run_dir=tmp_path, data=DataConfig(), trainer=TrainerConfig(),
                        upstream=upstream)


@pytest.mark.parametrize("frontend", ["conv", "mel"])
def test_frames_follow_the_floor_contract(frontend):
    model = Hubert(HubertConfig(frontend=frontend, **TINY))
    assert model.hop_length == 320 and model.frame_rate == 50.0
    for n in (319, 320, 1000, 4800, 16001):
        assert model.features(torch.randn(2, n), layer=1).shape == (2, n // 320, 48)
    mask = span_mask(torch.tensor([50, 20]), 50, 0.08, 10, torch.Generator().manual_seed(0))
    assert mask.shape == (2, 50) and mask.any(1).all() and not mask[1, 20:].any()


@pytest.mark.parametrize("frontend", ["conv", "mel"])
def test_masked_prediction_loss_falls_and_next_iteration_round_trips(corpus, teacher, tmp_path, frontend):
    torch.manual_seed(0)
    teacher_path = teacher.save_pretrained(tmp_path / "km0.safetensors")
    up = {"km0": StageRecord("km0", "kmeans_tokenizer", tmp_path, ("semantic",), teacher_path)}
    stage = HubertStage(HubertStageConfig(model=HubertConfig(frontend=frontend, **TINY), lr=3e-3, warmup_steps=10, mask_start_prob=0.1, mask_span=4))
    stage.prepare(ctx_with(tmp_path, up))
    assert stage.model.cfg.num_targets == 8

    waves = torch.stack([w for w, _ in corpus])
    batches = [{"audio": waves[i : i + 4], "lengths": torch.full((4,), waves.shape[1])} for i in range(0, 16, 4)]
    gen = torch.Generator().manual_seed(0)

    def eval_loss():
        stage.eval()
        with torch.no_grad():
            return sum(float(stage._step(b, torch.Generator().manual_seed(i))[0]) for i, b in enumerate(batches)) / 4

    before = eval_loss()
    stage.train()
    trainer = L.Trainer(max_steps=200, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(stage, DataLoader(batches * 50, batch_size=None))
    after = eval_loss()
    assert after < 0.7 * before, (before, after)

    hubert_path = stage.save_pretrained(tmp_path / "hubert.safetensors")
    assert not any(k.startswith("_teacher") for k in stage.state_dict())  # targets model is not saved

    # Iteration 1: k-means on layer 1 of the trained HuBERT, saved self-contained.
    up = {"hub": StageRecord("hub", "hubert", tmp_path, ("ssl_features",), hubert_path)}
    km1 = KMeansTokenizerStage(KMeansTokenizerConfig(features="hubert", layer=1, frame_rate=25.0, vocab_size=8))
    km1.prepare(ctx_with(tmp_path, up))
    x = km1.raw_features(waves).flatten(0, 1)
    km1.feat_mean.copy_(x.mean(0))
    km1.feat_std.copy_(x.std(0))
    km1.kmeans.fit(km1.features(waves).flatten(0, 1), num_iters=5, generator=torch.Generator().manual_seed(0))
    assert len(km1.feature_model.blocks) == 1 and km1.feature_model.head is None  # truncated copy
    assert km1.feature_model.cfg.frontend == frontend
    path = km1.save_pretrained(tmp_path / "km1.safetensors")
    hubert_path.unlink()  # the export must not need the upstream stage any more
    loaded = Stage.load_pretrained(path)
    ids = loaded.encode(waves[:3, :12345])
    assert ids.shape == (3, 12345 // 640)
    assert torch.equal(ids, km1.encode(waves[:3, :12345]))

    # Iteration 2: a fresh HuBERT predicts the ids of that tokenizer (k-means of iteration 1's layer).
    up = {"km1": StageRecord("km1", "kmeans_tokenizer", tmp_path, ("semantic",), path)}
    stage2 = HubertStage(HubertStageConfig(model=HubertConfig(frontend=frontend, **TINY), mask_start_prob=0.1, mask_span=4))
    stage2.prepare(ctx_with(tmp_path, up))
    assert stage2.model.cfg.num_targets == 8
    targets = stage2.targets(waves[:2], None, waves.shape[1] // 320)  # 50 Hz: each 25 Hz id twice
    assert torch.equal(targets[:, ::2], loaded.encode(waves[:2])) and torch.equal(targets[:, 1::2], targets[:, ::2])
    loss, _ = stage2._step(batches[0])
    loss.backward()
    assert torch.isfinite(loss) and stage2.model.head.weight.grad.abs().sum() > 0
