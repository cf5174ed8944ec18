"""Sampling settings and generation lengths of each stage."""
import torch

from soundstage.plugins.lm import static_decoding
from soundstage.plugins.lm.sampling import SamplingConfig, decode, sample
from soundstage.plugins.lm.stages import CoarseLMStage, FineLMStage, SemanticLMStage

from lm_test_helpers import AC_RATE, CODEBOOK, QC, SEM_RATE, SEM_VOCAB, Q, coarse_config, fine_config, semantic_config


def test_top_k_one_and_tiny_top_p_and_zero_temperature_are_greedy():
    logits = torch.randn(64, 50)
    greedy = logits.argmax(-1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample(logits, temperature=1.5, top_k=1, generator=g), greedy)
    assert torch.equal(sample(logits, temperature=1.5, top_p=1e-6, generator=g), greedy)
    assert torch.equal(sample(logits, temperature=0.0), greedy)


def test_top_k_and_top_p_restrict_the_support():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 30).expand(4000, 30)
    top3 = set(logits[0].topk(3).indices.tolist())
    drawn = set(sample(logits, top_k=3, generator=g).tolist())
    assert drawn == top3  # all three drawn over 4000 rows, nothing else
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()[None].expand(4000, 4)
    assert set(sample(probs, top_p=0.7, generator=g).tolist()) == {0, 1}  # 0.5 < 0.7 <= 0.8


def test_sampling_is_reproducible_with_a_generator_and_temperature_sharpens():
    logits = torch.randn(2000, 10)
    a = sample(logits, generator=torch.Generator().manual_seed(3))
    b = sample(logits, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    cold = sample(logits, temperature=0.05, generator=torch.Generator().manual_seed(1))
    hot = sample(logits, temperature=5.0, generator=torch.Generator().manual_seed(1))
    greedy = logits.argmax(-1)
    assert (cold == greedy).float().mean() > (hot == greedy).float().mean() + 0.3


def test_decode_honours_length_and_ranges():
    stage = SemanticLMStage(semantic_config())
    ranges = [(2, 5), (0, 1), (7, 9)] * 4
    out = decode(stage.model, torch.zeros(3, 2, dtype=torch.long), ranges, SamplingConfig())
    assert out.shape == (3, 12)
    for i, (lo, hi) in enumerate(ranges):
        assert ((out[:, i] >= lo) & (out[:, i] < hi)).all()


def test_semantic_generation_lengths_sliding_past_the_block_and_greedy_equivalence():
    torch.manual_seed(0)
    stage = SemanticLMStage(semantic_config())  # block_size 64
    prompt = torch.randint(0, SEM_VOCAB, (2, 10))
    out = stage.generate(prompt, num_tokens=100, temperature=1.0)
    assert out.shape == (2, 110) and torch.equal(out[:, :10], prompt) and out.max() < SEM_VOCAB
    assert stage.generate(None, num_tokens=7, batch_size=3).shape == (3, 7)
    greedy = stage.generate(prompt, num_tokens=20, temperature=0.0)
    assert torch.equal(stage.generate(prompt, num_tokens=20, top_k=1), greedy)


def test_per_stage_sampling_defaults_come_from_the_config():
    torch.manual_seed(0)
    stage = SemanticLMStage(semantic_config(sampling=SamplingConfig(temperature=0.0)))
    prompt = torch.randint(0, SEM_VOCAB, (2, 5))
    a, b = stage.generate(prompt, 15), stage.generate(prompt, 15)
    assert torch.equal(a, b)  # greedy by config, so deterministic
    assert torch.equal(a, stage.generate(prompt, 15, temperature=1.0, top_k=1))


def test_coarse_generation_spans_several_windows_and_keeps_the_prompt():
    torch.manual_seed(0)
    stage = CoarseLMStage(coarse_config())  # 1 s windows: 10 semantic tokens, 20 frames
    semantic = torch.randint(0, SEM_VOCAB, (2, 35))  # 3.5 s
    prompt = torch.randint(0, CODEBOOK, (2, Q, 9))
    codes = stage.generate(semantic, acoustic_prompt=prompt)
    assert codes.shape == (2, QC, round(35 * AC_RATE / SEM_RATE))
    assert torch.equal(codes[:, :, :9], prompt[:, :QC]) and codes.max() < CODEBOOK and codes.min() >= 0
    assert stage.generate(semantic[:, :4], num_frames=5).shape == (2, QC, 5)


def test_fine_generation_covers_every_frame_chunk_by_chunk():
    torch.manual_seed(0)
    stage = FineLMStage(fine_config())  # chunks of 10 frames
    coarse = torch.randint(0, CODEBOOK, (2, QC, 23))
    codes = stage.generate(coarse, top_p=0.9)
    assert codes.shape == (2, Q, 23) and torch.equal(codes[:, :QC], coarse) and codes.max() < CODEBOOK


def test_dedup_semantic_lm_continues_the_deduplicated_prompt():
    stage = SemanticLMStage(semantic_config(dedup=True))
    prompt = torch.tensor([[1, 1, 2, 2, 2, 3], [4, 5, 5, 6, 7, 7]])
    out = stage.generate(prompt, num_tokens=5)
    assert out.shape == (2, 8)  # rows deduplicate to 3 and 4 ids; both keep their latest 3
    assert out[:, :3].tolist() == [[1, 2, 3], [5, 6, 7]]


def test_guidance_one_is_the_conditioned_model_and_zero_the_unconditioned_one():
    """logits = uncond + g (cond - uncond): greedy decoding at g = 1 equals decoding with the conditions
    alone, at g = 0 with the "none" ids alone; g = 3 differs from both on a random model."""
    stage = CoarseLMStage(coarse_config(aligned_semantic=True, aligned_context=1))
    torch.manual_seed(0)
    for p in stage.model.condition.parameters():
        p.data.normal_(0, 1.0)  # conditions that matter
    layout, model = stage.layout, stage.model
    semantic = torch.randint(0, SEM_VOCAB, (2, 6))
    seq = layout.encode(semantic, torch.empty(2, QC, 0, dtype=torch.long))
    cond = layout.conditions(semantic, 12)
    none = layout.unconditioned(cond)
    ranges = [layout.level_range(q) for q in range(QC)] * 12

    def run(g: float, c: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        return decode(model, seq, ranges, SamplingConfig(temperature=0.0, guidance=g), None, c, u)

    assert torch.equal(run(1.0, cond, none), run(1.0, cond))
    assert torch.equal(run(0.0, cond, none), run(1.0, none))
    strong = run(3.0, cond, none)
    assert not torch.equal(strong, run(1.0, cond)) and not torch.equal(strong, run(1.0, none))
    assert (none[:, :, 1] == layout.semantic_vocab_size + 1).all()  # "none" of the second offset's slot


def test_compiled_static_decoding_samples_what_eager_decoding_samples(monkeypatch):
    """sampling.compile: the same tokens as eager decoding, also a second time (cache and step reused),
    with guidance (a batch of 2B rows) and across a change of attention span (32 -> 64 positions)."""
    monkeypatch.setattr(static_decoding, "MIN_SPAN", 32)
    stage = CoarseLMStage(coarse_config(aligned_semantic=True))
    layout, model = stage.layout, stage.model
    semantic = torch.randint(0, SEM_VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    seq = layout.encode(semantic, torch.empty(2, QC, 0, dtype=torch.long))
    cond = layout.conditions(semantic, 12)
    ranges = [layout.level_range(q) for q in range(QC)] * 12
    for guidance in (1.0, 2.0):
        runs = [decode(model, seq, ranges, SamplingConfig(temperature=0.8, guidance=guidance, compile=c),
                       torch.Generator().manual_seed(5), cond, layout.unconditioned(cond)) for c in (False, True, True)]
        assert torch.equal(runs[0], runs[1]) and torch.equal(runs[1], runs[2])


def test_a_per_call_guidance_overrides_the_configured_one():
    stage = CoarseLMStage(coarse_config(aligned_semantic=True, sampling=SamplingConfig(temperature=0.0, guidance=3.0)))
    torch.manual_seed(0)
    for p in stage.model.condition.parameters():
        p.data.normal_(0, 1.0)
    semantic = torch.randint(0, SEM_VOCAB, (2, 6), generator=torch.Generator().manual_seed(2))
    configured, off = stage.generate(semantic), stage.generate(semantic, guidance=1.0)
    stage.config.sampling.guidance = 1.0
    assert torch.equal(off, stage.generate(semantic)) and not torch.equal(configured, off)


def test_a_sequence_of_sampling_configs_applies_one_per_step_in_turn():
    """decode with [guidance g, guidance 1] (greedy) makes what two decodes of one token each make: the
    first token guided, the second (after the first) not; the same list with one value is the scalar."""
    stage = CoarseLMStage(coarse_config(aligned_semantic=True, aligned_context=1))
    torch.manual_seed(0)
    for p in stage.model.condition.parameters():
        p.data.normal_(0, 1.0)
    layout, model = stage.layout, stage.model
    semantic = torch.randint(0, SEM_VOCAB, (4, 6), generator=torch.Generator().manual_seed(4))
    seq = layout.encode(semantic, torch.empty(4, QC, 0, dtype=torch.long))
    cond = layout.conditions(semantic, 12)
    none = layout.unconditioned(cond)
    ranges = [layout.level_range(q) for q in range(QC)] * 12
    guided, plain = SamplingConfig(temperature=0.0, guidance=4.0), SamplingConfig(temperature=0.0)
    both = decode(model, seq, ranges[:2], [guided, plain], None, cond, none)
    first = decode(model, seq, ranges[:1], guided, None, cond, none)
    second = decode(model, torch.cat([seq, first], 1), ranges[1:2], plain, None, cond, none)
    assert torch.equal(both, torch.cat([first, second], 1))
    assert not torch.equal(first, decode(model, seq, ranges[:1], plain, None, cond, none))  # guidance mattered
    assert torch.equal(decode(model, seq, ranges, [guided] * QC, None, cond, none), decode(model, seq, ranges, guided, None, cond, none))


def test_per_level_guidance_and_temperature_of_the_coarse_lm():
    """sampling.level_guidance: each level of the teacher-forced codes is the one that level's guidance
    gives; generation with one value per level equals the scalar; a list of the wrong length is refused."""
    import pytest

    from soundstage.config import RangeError
    from soundstage.plugins.lm.configs import CoarseSamplingConfig

    stage = CoarseLMStage(coarse_config(aligned_semantic=True, aligned_context=1)).eval()
    torch.manual_seed(0)
    for p in stage.model.condition.parameters():
        p.data.normal_(0, 1.0)
    semantic = torch.randint(0, SEM_VOCAB, (2, 25), generator=torch.Generator().manual_seed(3))
    truth = torch.randint(0, CODEBOOK, (2, QC, 50), generator=torch.Generator().manual_seed(5))
    mixed = [3.0] + [1.0] * (QC - 1)
    forced = stage.teacher_forced(semantic, truth, level_guidance=mixed)
    assert torch.equal(forced[:, 0], stage.teacher_forced(semantic, truth, guidance=3.0)[:, 0])
    assert torch.equal(forced[:, 1:], stage.teacher_forced(semantic, truth, guidance=1.0)[:, 1:])
    assert not torch.equal(forced, stage.teacher_forced(semantic, truth, guidance=3.0))

    def draw(**kw):
        return stage.generate(semantic, generator=torch.Generator().manual_seed(7), **kw)

    assert torch.equal(draw(level_guidance=[2.0] * QC, level_temperature=[0.5] * QC), draw(guidance=2.0, temperature=0.5))
    assert not torch.equal(draw(level_guidance=mixed), draw(guidance=3.0))
    stage.config.sampling = CoarseSamplingConfig(level_guidance=mixed)
    assert torch.equal(draw(), draw(level_guidance=mixed))
    assert torch.equal(draw(guidance=1.0), draw(level_guidance=[1.0] * QC))  # a scalar override replaces the list
    with pytest.raises(RangeError, match=f"level_guidance: has {QC + 1} values; give one per coarse level \\({QC}\\)"):
        draw(level_guidance=[1.0] * (QC + 1))
    with pytest.raises(RangeError, match="sampling.level_temperature"):
        coarse_config(sampling=CoarseSamplingConfig(level_temperature=[0.5] * (QC + 1)))
