"""Each LM stage trains with Lightning, overfits a fixed token sequence and checks its tokens stage."""
from pathlib import Path

import pytest
import torch

from soundstage.data.token_batch import TokenBatch
from soundstage.config import RangeError
from soundstage.errors import SoundstageError
from soundstage.plugins.lm.stages import CoarseLMStage, FineLMStage, SemanticLMStage
from soundstage.recipe_schema import DataConfig
from soundstage.stage import StageContext, StageRecord
from soundstage.token_contract import TokenStream
from soundstage.trainer import TrainerConfig

from lm_test_helpers import (AC_RATE, CODEBOOK, Q, QC, SEM_RATE, SEM_VOCAB, InMemoryTokens, coarse_config,
                             fine_config, quick_trainer, semantic_config)

STEPS = 120


def fixed_tokens(ts: int, ta: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, SEM_VOCAB, (1, ts), generator=g), torch.randint(0, CODEBOOK, (1, Q, ta), generator=g)


def fit(stage, semantic, acoustic) -> dict:
    torch.manual_seed(0)
    trainer = quick_trainer(STEPS, limit_val_batches=1, val_check_interval=STEPS, check_val_every_n_epoch=None)
    trainer.fit(stage, InMemoryTokens(semantic, acoustic, batch_size=2, repeat=2))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_semantic_lm_overfits_a_fixed_sequence():
    semantic, acoustic = fixed_tokens(20, 40)
    stage = SemanticLMStage(semantic_config())
    metrics = fit(stage, semantic, acoustic)
    assert metrics["val/acc"] == 1.0 and metrics["val/loss"] < 0.1 and metrics["val/ppl"] < 1.1
    out = stage.generate(semantic[:, :4], num_tokens=16, temperature=0.0)
    assert torch.equal(out, semantic)


def test_coarse_lm_overfits_and_regenerates_the_codes():
    semantic, acoustic = fixed_tokens(10, 20)
    stage = CoarseLMStage(coarse_config())
    metrics = fit(stage, semantic, acoustic)
    assert metrics["val/acc"] == 1.0 and metrics["val/loss"] < 0.1
    assert {f"val/level{q}/acc" for q in range(QC)} <= set(metrics)  # per RVQ level
    assert torch.equal(stage.generate(semantic, temperature=0.0), acoustic[:, :QC])
    assert torch.equal(stage.teacher_forced(semantic, acoustic), acoustic[:, :QC])  # it learned every position


@pytest.mark.parametrize("guidance,prefix", [(1.0, True), (2.5, True), (2.5, False)])
def test_teacher_forced_codes_are_generations_own_when_the_truth_is_its_greedy_output(guidance, prefix):
    """Given its own greedy codes as the truth, the teacher-forced argmax reproduces them: same windows
    (several here), conditions, guidance and level ranges as generation; only the history's source differs."""
    torch.manual_seed(0)
    stage = CoarseLMStage(coarse_config(aligned_semantic=True, aligned_context=1, condition_dropout=0.1,
                                        semantic_prefix=prefix)).eval()
    semantic = torch.randint(0, SEM_VOCAB, (2, 25), generator=torch.Generator().manual_seed(3))  # 2.5 s: 50 frames
    greedy = stage.generate(semantic, temperature=0.0, guidance=guidance)
    assert greedy.shape == (2, QC, 50)  # windows of 20 frames: the walk takes several
    assert torch.equal(stage.teacher_forced(semantic, greedy, guidance=guidance), greedy)
    shuffled = greedy[..., torch.randperm(50, generator=torch.Generator().manual_seed(0))]
    assert not torch.equal(stage.teacher_forced(semantic, shuffled, guidance=guidance), shuffled)


def test_fine_lm_overfits_and_regenerates_the_fine_levels():
    semantic, acoustic = fixed_tokens(5, 10)
    stage = FineLMStage(fine_config())
    metrics = fit(stage, semantic, acoustic)
    assert metrics["val/acc"] == 1.0 and metrics[f"val/level{QC}/loss"] < 0.1
    assert torch.equal(stage.generate(acoustic[:, :QC], temperature=0.0), acoustic)


def context(tmp_path: Path, semantic: dict | None = None, acoustic: dict | None = None, **outputs) -> StageContext:
    """A finished tokens stage whose recorded streams are these sizes, changed by ``semantic`` / ``acoustic``."""
    streams = {"semantic": TokenStream("semantic", SEM_VOCAB, SEM_RATE).to_dict() | (semantic or {}),
               "acoustic": TokenStream("acoustic", CODEBOOK, AC_RATE, Q).to_dict() | (acoustic or {})}
    produced = {"train_tokens": str(tmp_path / "train-{000000..000001}.tar"), "val_tokens": None, "streams": streams} | outputs
    record = StageRecord(name="tokens", plugin="tokenize", stage_dir=tmp_path, produces=("tokens",), outputs=produced)
    return StageContext(name="lm", stage_dir=tmp_path / "lm", run_dir=tmp_path, data=DataConfig(),
                        trainer=TrainerConfig(), upstream={"tokens": record})


def test_prepare_accepts_matching_tokens_and_names_every_mismatch(tmp_path):
    for stage in (SemanticLMStage(semantic_config()), CoarseLMStage(coarse_config()), FineLMStage(fine_config())):
        stage.prepare(context(tmp_path))
    with pytest.raises(SoundstageError, match=r"stage 'lm' does not match the acoustic tokens of stage 'tokens': "
                                              r"vocab_size \(config codebook_size\): expects 8, gets 1024") as err:
        CoarseLMStage(coarse_config()).prepare(context(tmp_path, {"frame_rate": 50.0}, {"vocab_size": 1024}))
    assert f"frame_rate (config semantic_rate): expects {SEM_RATE:g}, gets 50" in str(err.value)  # every mismatch, both streams
    with pytest.raises(SoundstageError, match=r"levels \(config num_quantizers\): expects 3, gets 8"):
        FineLMStage(fine_config()).prepare(context(tmp_path, acoustic={"levels": 8}))
    with pytest.raises(SoundstageError, match="levels \\(config num_coarse_quantizers\\): expects at least 2, gets 1"):
        CoarseLMStage(coarse_config()).prepare(context(tmp_path, acoustic={"levels": 1}))


def test_a_window_longer_than_the_block_is_a_config_error():
    with pytest.raises(SoundstageError, match="block_size"):
        CoarseLMStage(coarse_config(window_seconds=5.0))


def test_trains_on_real_token_shards_through_the_token_datamodule(tmp_path):
    token_shards = pytest.importorskip("soundstage.data.token_shards")
    writer = token_shards.TokenShardWriter(tmp_path / "tokens", "train")
    g = torch.Generator().manual_seed(0)
    meta = {"duration": 2.0, "sample_rate": 800, "semantic_rate": SEM_RATE, "acoustic_rate": AC_RATE,
            "semantic_vocab_size": SEM_VOCAB, "codebook_size": CODEBOOK}
    for i in range(4):  # 2 s clips; the stage trains on aligned 1 s windows
        writer.write(f"clip{i}", meta, semantic=torch.randint(0, SEM_VOCAB, (20,), generator=g).numpy(),
                     acoustic=torch.randint(0, CODEBOOK, (Q, 40), generator=g).numpy())
    (shard,) = writer.close()
    ctx = context(tmp_path, train_tokens=shard, val_tokens=shard)
    stage = CoarseLMStage(coarse_config(batch_size=2, batches_per_epoch=2))
    stage.prepare(ctx)
    trainer = quick_trainer(4, limit_val_batches=1)
    trainer.fit(stage, stage.build_datamodule(ctx))
    assert trainer.global_step == 4
    assert torch.isfinite(trainer.callback_metrics["val/level1/ppl"])


@pytest.mark.parametrize("make_stage", [lambda: CoarseLMStage(coarse_config(preview_seconds=0.5)),
                                        lambda: FineLMStage(fine_config(preview_seconds=0.5))])
def test_validation_logs_generated_audio_when_a_codec_is_available(tmp_path, make_stage):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lm_test_helpers import ToyCodec

    stage = make_stage()
    codec = ToyCodec()
    stage.set_preview_codec(codec)
    semantic, acoustic = fixed_tokens(10, 20)
    logger = TensorBoardLogger(tmp_path, name="lm")
    trainer = quick_trainer(2, logger=logger, limit_val_batches=1, log_every_n_steps=1)
    trainer.fit(stage, InMemoryTokens(semantic, acoustic, batch_size=1))
    assert set(stage.state_dict()) == set(make_stage().state_dict())  # the codec stays out of the checkpoint
    events = EventAccumulator(logger.log_dir, size_guidance={"audio": 0})
    events.Reload()
    (tag,) = events.Tags()["audio"]
    clip = events.Audio(tag)[-1]
    assert clip.sample_rate == codec.sample_rate and clip.length_frames == 10 * codec.hop_length


def test_recipe_style_configs_validate_with_nested_sections():
    from soundstage.config import build_config
    from soundstage.errors import RecipeError
    from soundstage.plugins.lm.stages import CoarseLMConfig

    cfg = build_config(CoarseLMConfig, {"model": {"n_layer": 2}, "sampling": {"top_k": 50}, "num_coarse_quantizers": 3})
    assert cfg.model.n_layer == 2 and cfg.model.block_size == 2304 and cfg.sampling.top_k == 50
    with pytest.raises(RecipeError, match="model.n_layers"):
        build_config(CoarseLMConfig, {"model": {"n_layers": 2}}, where="stages.coarse.config")


def learn_and_apply(config, code_of: callable) -> float:
    """Train on random semantic sequences whose codes are ``code_of(frame semantic ids [B, Ta], level)``;
    the fraction of codes greedy generation gets right on unseen sequences."""
    g = torch.Generator().manual_seed(3)
    semantic = torch.randint(0, SEM_VOCAB, (64, 10), generator=g)
    acoustic = torch.stack([code_of(semantic.repeat_interleave(2, dim=1), q) for q in range(Q)], dim=1)
    stage = CoarseLMStage(config)
    torch.manual_seed(0)
    trainer = quick_trainer(150, limit_val_batches=1, val_check_interval=150, check_val_every_n_epoch=None)
    trainer.fit(stage, InMemoryTokens(semantic, acoustic, batch_size=16))
    unseen = torch.randint(0, SEM_VOCAB, (4, 10), generator=g)
    expected = torch.stack([code_of(unseen.repeat_interleave(2, dim=1), q) for q in range(QC)], dim=1)
    return float((stage.generate(unseen, temperature=0.0) == expected).float().mean())


def test_aligned_context_learns_codes_that_depend_on_the_next_semantic_id():
    """Codes of a frame that are a function of the *next* semantic id (a lookahead, as coarticulation
    is): a context of 1 learns it; the frame's own id alone cannot."""
    def next_id(frames, q):
        ahead = torch.cat([frames[:, 2:], frames[:, -2:]], dim=1)  # 2 frames per id; the last keeps its own
        return (ahead * 3 + q) % CODEBOOK
    with_context = learn_and_apply(coarse_config(aligned_semantic=True, aligned_context=1), next_id)
    own_id_only = learn_and_apply(coarse_config(aligned_semantic=True), next_id)
    assert with_context > 0.9 and own_id_only < 0.6, (with_context, own_id_only)


@pytest.mark.parametrize("prefix", [True, False])
def test_aligned_semantic_conditioning_learns_a_framewise_mapping_it_applies_to_unseen_ids(prefix):
    """Codes that are a function of their frame's semantic id: the aligned coarse LM learns the function
    from random sequences and applies it to a semantic sequence it never saw (temperature 0), with or
    without AudioLM's semantic prefix."""
    def own_id(frames, q):  # AC_RATE = 2 x SEM_RATE
        return (frames * 3 + q) % CODEBOOK
    assert learn_and_apply(coarse_config(aligned_semantic=True, semantic_prefix=prefix), own_id) > 0.95


def test_no_semantic_prefix_without_aligned_conditioning_is_a_range_error():
    with pytest.raises(RangeError, match="semantic_prefix: can be false only with aligned_semantic"):
        coarse_config(semantic_prefix=False)


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_condition_dropout_trains_the_unconditioned_model_on_none_ids_only_in_training(dropout):
    """With every sequence's conditions dropped, only the "none" ids get gradient; validation keeps them."""
    stage = CoarseLMStage(coarse_config(aligned_semantic=True, condition_dropout=dropout))
    g = torch.Generator().manual_seed(0)
    batch = TokenBatch.whole(semantic=torch.randint(0, SEM_VOCAB, (2, 5), generator=g),
                             acoustic=torch.randint(0, CODEBOOK, (2, Q, 10), generator=g))
    stage.train()
    stage._loss(batch)[0].backward()
    rows_with_gradient = stage.model.condition.weight.grad.abs().sum(1).nonzero().flatten().tolist()
    assert (rows_with_gradient == [0]) == (dropout == 1.0)  # row 0: "none"
    stage.eval()
    stage.model.zero_grad()
    stage._loss(batch)[0].backward()
    assert stage.model.condition.weight.grad[1:].abs().sum() > 0
