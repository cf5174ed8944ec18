"""Best-of-N coarse generation: candidates are re-tokenized and the one closest to the semantic ids is kept."""
import pytest
import torch
from torch import Tensor

from soundstage.plugins.lm.configs import CoarseSamplingConfig
from soundstage.plugins.lm.generation import AudioLMGenerator
from soundstage.plugins.lm.semantic_scorer import SemanticScorer
from soundstage.plugins.lm.stages import CoarseLMStage, FineLMStage, SemanticLMStage

from lm_test_helpers import AC_RATE, QC, SEM_RATE, ToyCodec, ToySemanticTokenizer, coarse_config, fine_config, semantic_config


class CostTokenizer(ToySemanticTokenizer):
    """The toy tokenizer with k-means-style ``token_costs`` (squared distance to every centroid)."""

    def token_costs(self, wave: Tensor) -> Tensor:
        B, T = wave.shape
        x = self.proj(wave[:, : T // self.hop_length * self.hop_length].reshape(B, -1, self.hop_length))
        return torch.cdist(x, self.centroids[None].expand(B, -1, -1)).pow(2)


@torch.inference_mode()
def _agreement(tokenizer, codec, codes: Tensor, semantic: Tensor) -> float:
    ids = tokenizer.encode(codec.decode(codes))
    n = min(ids.shape[1], semantic.shape[1])
    return (ids[:, :n] == semantic[:, :n]).float().mean().item()


@pytest.mark.parametrize("tokenizer_class", [ToySemanticTokenizer, CostTokenizer])
def test_more_candidates_follow_the_semantic_ids_more_closely(tokenizer_class):
    torch.manual_seed(0)
    tokenizer, codec, coarse = tokenizer_class(), ToyCodec(), CoarseLMStage(coarse_config())
    scorer = SemanticScorer(tokenizer, codec, AC_RATE, SEM_RATE)
    semantic = torch.randint(0, 8, (16, 20))  # 2 s: 40 codec frames, 4 chunks of 0.5 s
    cost = {}  # the scorer over the whole output: share of ids that differ, or the distance margin
    for n in (1, 8):
        codes = coarse.generate(semantic, candidates=n, scorer=scorer, generator=torch.Generator().manual_seed(1))
        assert codes.shape == (16, QC, 40)
        cost[n] = scorer(codes, semantic, 0).mean().item()
    assert cost[8] < 0.85 * cost[1], cost


def test_the_prompt_stays_and_candidates_come_from_the_recipe_default():
    torch.manual_seed(0)
    tokenizer, codec = ToySemanticTokenizer(), ToyCodec()
    coarse = CoarseLMStage(coarse_config(sampling=CoarseSamplingConfig(candidates=3, candidate_seconds=0.3)))
    calls = []

    def counting(codes, semantic, t0):
        calls.append((codes.shape[0], t0, codes.shape[-1]))
        return SemanticScorer(tokenizer, codec, AC_RATE, SEM_RATE)(codes, semantic, t0)

    semantic, prompt = torch.randint(0, 8, (2, 15)), torch.randint(0, 8, (2, QC, 10))
    codes = coarse.generate(semantic, acoustic_prompt=prompt, scorer=counting)
    assert codes.shape == (2, QC, 30) and torch.equal(codes[..., :10], prompt)
    assert calls == [(6, 10, 16), (6, 16, 22), (6, 22, 28), (6, 28, 30)]  # 3 candidates of 6 frames each
    assert coarse.generate(semantic, acoustic_prompt=prompt).shape == (2, QC, 30)  # no scorer: plain sampling


def test_the_scorer_is_zero_for_audio_that_tokenizes_to_the_wanted_ids():
    torch.manual_seed(0)
    tokenizer, codec = CostTokenizer(), ToyCodec()
    codes = torch.randint(0, 8, (4, QC, 40))
    own = tokenizer.encode(codec.decode(codes))
    scorer = SemanticScorer(tokenizer, codec, AC_RATE, SEM_RATE, context_seconds=0.3)
    assert torch.all(scorer(codes, own, 20) == 0)
    other = (own + 1) % 8
    assert torch.all(scorer(codes, other, 20) > 0)


def test_the_pipeline_applies_best_of_n_from_its_sampling_overrides():
    torch.manual_seed(0)
    gen = AudioLMGenerator(ToySemanticTokenizer(), SemanticLMStage(semantic_config()), CoarseLMStage(coarse_config()),
                           FineLMStage(fine_config()), ToyCodec(), sampling={"coarse": {"candidates": 8}})
    semantic = torch.randint(0, 8, (16, 20))
    plain = AudioLMGenerator(gen.semantic_tokenizer, gen.semantic_lm, gen.coarse_lm, gen.fine_lm, gen.codec)
    best = _agreement(gen.semantic_tokenizer, gen.codec, gen.acoustic_codes(semantic)[:, :QC], semantic)
    base = _agreement(gen.semantic_tokenizer, gen.codec, plain.acoustic_codes(semantic)[:, :QC], semantic)
    assert best > base + 0.1, (best, base)
