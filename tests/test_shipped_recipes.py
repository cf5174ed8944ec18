"""The shipped recipes: paper sizes, and the cross-stage contracts `recipe validate` enforces."""
import math

import pytest

from soundstage.errors import RecipeError
from soundstage.recipe import load_recipe


def test_audiolm_paper_matches_the_paper():
    recipe = load_recipe("audiolm_paper")
    codec = recipe.stages["codec"].config
    assert codec.sample_rate == 16000 and list(codec.strides) == [2, 4, 5, 8]
    assert codec.sample_rate / math.prod(codec.strides) == 50.0
    assert (codec.num_quantizers, codec.codebook_size) == (12, 1024)  # 12 x 10 bits x 50 Hz = 6 kbps
    semantic = recipe.stages["semantic"].config
    assert (semantic.vocab_size, semantic.frame_rate) == (1024, 25.0)
    assert recipe.stages["coarse_lm"].config.num_coarse_quantizers == 4
    for name, seconds in (("semantic_lm", 30.0), ("coarse_lm", 10.0), ("fine_lm", 3.0)):
        cfg = recipe.stages[name].config
        m = cfg.model
        assert (m.n_layer, m.n_head, m.d_model, m.ff_mult * m.d_model, m.dropout) == (12, 16, 1024, 4096, 0.1)
        assert m.position == "relative_bias" and cfg.window_seconds == seconds


@pytest.mark.slow
def test_audiolm_paper_builds_models_of_the_paper_size():
    recipe = load_recipe("audiolm_paper")
    per_layer = 12 * 1024**2  # attention 4 d^2 + MLP 8 d^2 (no biases)
    for name in ("semantic_lm", "coarse_lm", "fine_lm"):
        plan = recipe.stages[name]
        n = sum(p.numel() for p in plan.stage_class(plan.config).parameters())
        # 12 layers of 12 d^2 = 151M, plus token embeddings of a few thousand ids
        assert 12 * per_layer < n < 12 * per_layer * 1.12, (name, n)
    hubert = recipe.stages["hubert"]
    n = sum(p.numel() for p in hubert.stage_class(hubert.config).parameters())
    assert 90e6 < n < 100e6  # HuBERT Base: 95M


@pytest.mark.parametrize(
    "override, message",
    [
        ("stages.fine_lm.config.num_quantizers=8",
         "stage 'fine_lm' does not match the acoustic tokens of stage 'codec': levels (config num_quantizers): expects 8, gets 4"),
        ("stages.coarse_lm.config.semantic_vocab_size=50",
         "stage 'coarse_lm' does not match the semantic tokens of stage 'semantic': vocab_size (config semantic_vocab_size): expects 50, gets 64"),
        ("stages.codec.config.strides=[4,4,5,8]", "frame_rate (config acoustic_rate): expects 50, gets 25"),
        ("stages.semantic_lm.config.semantic_rate=50", "frame_rate (config semantic_rate): expects 50, gets 25"),
        ("stages.coarse_lm.config.num_coarse_quantizers=6", "levels (config num_coarse_quantizers): expects at least 6, gets 4"),
        ("data.sample_rate=8000", "stages.codec.config.sample_rate': 16000 Hz but data.sample_rate is 8000 Hz"),
        ("stages.semantic_lm.trainer.strategy=fsdp", "stages.semantic_lm.trainer.strategy': fsdp needs accelerator gpu"),
    ],
)
def test_cross_stage_contracts_are_checked_without_building_models(override, message):
    with pytest.raises(RecipeError) as err:
        load_recipe("speech_tiny", [override])
    assert message in str(err.value)


def test_shared_numbers_flow_by_interpolation():
    recipe = load_recipe("speech_tiny", ["shared.codebook_size=128"])
    assert recipe.stages["codec"].config.codebook_size == 128
    assert recipe.stages["coarse_lm"].config.codebook_size == 128
    assert recipe.stages["fine_lm"].config.codebook_size == 128


def test_audiolm_paper_offers_soundstorm_at_the_papers_size():
    cfg = load_recipe("audiolm_paper").stages["soundstorm"].config
    m = cfg.model
    assert (m.block, m.n_layer, m.n_head, m.d_model, m.ff_mult * m.d_model, m.conv_kernel) == ("conformer", 12, 16, 1024, 4096, 5)
    assert (cfg.num_quantizers, cfg.codebook_size, cfg.window_seconds) == (12, 1024, 30.0)
    assert sum(cfg.decoding.per_level(cfg.num_quantizers)) == 27  # 16 passes for level 0, 1 for each finer level


@pytest.mark.parametrize("name, base", [("speech_tiny_soundstorm", "speech_tiny"), ("speech_small_soundstorm", "speech_small")])
def test_soundstorm_variants_replace_coarse_and_fine(name, base):
    recipe, parent = load_recipe(name), load_recipe(base)
    assert "coarse_lm" not in recipe.stages and "fine_lm" not in recipe.stages
    assert recipe.stages["samples"].needs == ["codec", "semantic", "semantic_lm", "soundstorm"]
    assert set(recipe.stages) - {"soundstorm"} == set(parent.stages) - {"coarse_lm", "fine_lm"}


def test_speech_tiny_encodec_uses_a_pretrained_codec_and_validates_without_it():
    recipe = load_recipe("speech_tiny_encodec", ["stages.encodec.config.path=/nonexistent/encodec_24khz"])
    codec = recipe.stages["encodec"]
    assert codec.plugin == "pretrained_codec" and "codec" not in recipe.stages
    assert recipe.stages["tokens"].needs == ["encodec", "semantic"]
    stream = codec.stage_class.token_streams(codec.config, {})["acoustic"]
    assert (stream.vocab_size, stream.levels, stream.frame_rate) == (1024, 8, 75.0)


def test_a_stage_config_can_start_from_a_named_preset():
    """`config: {preset: NAME}` puts the plugin's preset under the keys the recipe sets itself."""
    recipe = load_recipe("speech_tiny", ["stages.codec.config.preset=paper"])
    codec = recipe.stages["codec"].config
    assert codec.quantizer_dropout == 0.5 and codec.waveform_weight == 0.0  # from the paper preset
    assert codec.channels == 8 and codec.num_quantizers == 4  # the recipe's own keys win
    with pytest.raises(RecipeError, match=r"stages.codec.config.preset': unknown preset 'smal' \(did you mean 'small'\?"):
        load_recipe("speech_tiny", ["stages.codec.config.preset=smal"])
    with pytest.raises(RecipeError, match=r"unknown preset 'x' \(known: kmeans_tokenizer has none\)"):
        load_recipe("speech_tiny", ["stages.semantic.config.preset=x"])
