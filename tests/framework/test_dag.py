"""Stage ordering by needs."""
import pytest

from soundstage.dag import topological_order
from soundstage.errors import RecipeError


def test_order_respects_needs_and_keeps_recipe_order_for_ties():
    needs = {"lm": ["tokens"], "codec": [], "semantic": [], "tokens": ["codec", "semantic"]}
    order = topological_order(needs)
    assert order == ["codec", "semantic", "tokens", "lm"]


def test_unknown_need_names_the_stage():
    with pytest.raises(RecipeError, match=r"stages.lm.needs.*unknown stage 'tokens'"):
        topological_order({"lm": ["tokens"]}, "r.yaml")


def test_cycle_is_reported_with_its_path():
    with pytest.raises(RecipeError, match="cycle: a -> c -> b -> a"):
        topological_order({"a": ["c"], "b": ["a"], "c": ["b"]})

