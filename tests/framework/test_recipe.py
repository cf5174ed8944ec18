"""Recipe loading: includes, overrides, interpolation and validation errors that name the key and file."""
import textwrap

import pytest

from soundstage.errors import RecipeError
from soundstage.recipe import builtin_recipes, load_recipe


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BASE = """
    name: base
    data: {sample_rate: 8000}
    trainer: {max_steps: 5, accelerator: cpu}
    stages:
      a:
        plugin: toy_regressor
        config: {hidden: 8}
      b:
        plugin: toy_regressor
        needs: [a]
        config: {hidden: "${stages.a.config.hidden}", init_from_upstream: true}
        trainer: {max_steps: 3}
"""


def test_loads_with_interpolation_and_stage_trainer_overrides(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", BASE))
    assert list(recipe.stages) == ["a", "b"]
    assert recipe.stages["b"].config.hidden == 8
    assert recipe.stages["a"].trainer.max_steps == 5
    assert recipe.stages["b"].trainer.max_steps == 3
    assert recipe.stages["b"].trainer.accelerator == "cpu"  # inherited from the recipe-level section
    assert recipe.data.sample_rate == 8000


def test_command_line_overrides_flow_through_interpolation(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", BASE), ["stages.a.config.hidden=16", "trainer.max_steps=7"])
    assert recipe.stages["b"].config.hidden == 16
    assert recipe.stages["a"].trainer.max_steps == 7


def test_defaults_include_and_extend(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path,
        "child.yaml",
        """
        defaults: [base]
        trainer: {max_steps: 9}
        stages:
          a:
            config: {frequency: 2.0}
        """,
    )
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.stages["a"].config.frequency == 2.0 and recipe.stages["a"].config.hidden == 8
    assert recipe.stages["a"].trainer.max_steps == 9


@pytest.mark.parametrize(
    "override, message",
    [
        ("stages.a.config.hiden=3", r"key 'stages.a.config.hiden': unknown key \(did you mean 'hidden'\? valid keys of ToyRegressorConfig: hidden"),
        ("stages.a.config.hidden=abc", r"key 'stages.a.config.hidden': Value 'abc'.*Integer"),
        ("stages.a.plugin=toy_regresor", r"key 'stages.a.plugin': unknown stage plugin 'toy_regresor'; did you mean 'toy_regressor'"),
        ("stages.a.needs=[zzz]", r"key 'stages.a.needs': unknown stage 'zzz'"),
        ("stages.a.needs=[b]", r"'needs' form a cycle: a -> b -> a"),
        ("trainer.max_step=3", r"key 'trainer.max_step': unknown key \(did you mean 'max_steps'\? valid keys of TrainerConfig"),
        ("stages.a.trainer.precison=16", r"key 'stages.a.trainer.precison': unknown key"),
        ("stages.a.trainer.precision=bf16-mix", r"key 'stages.a.trainer.precision': must be one of auto, .*bf16-mixed"),
        ("data.sample_rate=fast", r"key 'data.sample_rate'"),
    ],
)
def test_validation_errors_name_key_path_and_file(tmp_path, override, message):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError, match=message) as err:
        load_recipe(path, [override])
    assert str(path) in str(err.value)


def test_missing_required_value(tmp_path):
    from dataclasses import dataclass

    from omegaconf import MISSING

    from soundstage.registry import register_stage
    from soundstage.stage import Stage, StageConfig

    @dataclass
    class NeedsVocab(StageConfig):
        vocab_size: int = MISSING

    @register_stage("needs_vocab_probe")
    class Probe(Stage):
        config_class = NeedsVocab

    path = write(tmp_path, "r.yaml", "stages:\n  lm: {plugin: needs_vocab_probe}\n")
    with pytest.raises(RecipeError, match=r"key 'stages.lm.config.vocab_size': missing required value"):
        load_recipe(path)
    assert load_recipe(path, ["stages.lm.config.vocab_size=1024"]).stages["lm"].config.vocab_size == 1024


def test_bad_override_syntax(tmp_path):
    with pytest.raises(RecipeError, match="expected key.path=value"):
        load_recipe(write(tmp_path, "r.yaml", BASE), ["trainer.max_steps"])


def test_missing_recipe_lists_builtins():
    with pytest.raises(RecipeError, match="built-in recipes: .*toy"):
        load_recipe("no_such_recipe")


def test_include_cycle(tmp_path):
    write(tmp_path, "x.yaml", "defaults: [y]\n")
    write(tmp_path, "y.yaml", "defaults: [x]\n")
    with pytest.raises(RecipeError, match="include cycle"):
        load_recipe(tmp_path / "x.yaml")


def test_consumed_stream_must_come_from_a_needed_stage(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        """
        stages:
          lm: {plugin: tokenize_consumer_probe}
        """,
    )
    from dataclasses import dataclass

    from soundstage.registry import register_stage
    from soundstage.stage import Stage, StageConfig

    @dataclass
    class ProbeConfig(StageConfig):
        pass

    @register_stage("tokenize_consumer_probe")
    class Probe(Stage):
        config_class = ProbeConfig
        consumes = ("tokens",)

    with pytest.raises(RecipeError, match=r"consumes \['tokens'\] but no stage in needs"):
        load_recipe(path)


@pytest.mark.parametrize("name", sorted(builtin_recipes()))
def test_every_shipped_recipe_validates(name):
    recipe = load_recipe(name)
    assert recipe.stages


def test_a_stage_whose_plugin_changes_under_defaults_starts_afresh(tmp_path):
    """The parent's config of a stage belongs to its plugin: a child that swaps the plugin gets none of it."""
    from dataclasses import dataclass

    from soundstage.registry import register_stage
    from soundstage.stage import Stage, StageConfig

    @dataclass
    class ConstantConfig(StageConfig):
        value: int = 0

    @register_stage("test_constant_job")
    class ConstantJob(Stage):
        config_class = ConstantConfig
        trainable = False

        def run(self, ctx):
            return {"value": self.config.value}

    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", """
        defaults: [base]
        stages:
          b:
            plugin: test_constant_job
            needs: [a]
            config: {value: 3}
        """)
    recipe = load_recipe(child)
    b = recipe.stages["b"]
    assert b.plugin == "test_constant_job" and b.config == ConstantConfig(value=3)  # no `hidden` merged in
    assert b.trainer.max_steps == 5 and b.needs == ["a"]  # the parent's stage-level trainer override went too
    assert recipe.stages["a"].config.hidden == 8  # untouched stages still merge
