"""Recipes choose their acoustic generator: `stages.<name>: null` drops an inherited stage."""
import pytest

from soundstage.errors import RecipeError
from soundstage.recipe import load_recipe


def test_an_override_can_drop_a_stage_and_a_dangling_need_is_an_error():
    recipe = load_recipe("audiolm_paper", ["stages.soundstorm=null"])
    assert "soundstorm" not in recipe.stages and "coarse_lm" in recipe.stages
    with pytest.raises(RecipeError, match="soundstorm"):
        load_recipe("speech_tiny_soundstorm", ["stages.soundstorm=null"])  # samples still needs it


def test_the_paper_recipe_can_switch_its_samples_to_soundstorm():
    recipe = load_recipe("audiolm_paper", ["stages.coarse_lm=null", "stages.fine_lm=null",
                                           "stages.samples.needs=[codec,semantic,semantic_lm,soundstorm]"])
    assert list(recipe.stages)[-2:] == ["soundstorm", "samples"]
