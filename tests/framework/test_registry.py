"""Registry: registration, duplicates, lookup errors and entry-point discovery."""
import importlib
import textwrap
from dataclasses import dataclass

import pytest

from soundstage import registry
from soundstage.errors import SoundstageError, StageNotFoundError
from soundstage.registry import available_stages, get_stage, list_stages, register_stage
from soundstage.stage import Stage, StageConfig


@dataclass
class _Cfg(StageConfig):
    width: int = 4


def test_register_and_lookup():
    @register_stage("test_reg_plain")
    class Plain(Stage):
        config_class = _Cfg

    assert get_stage("test_reg_plain") is Plain
    assert Plain.stage_name == "test_reg_plain"
    assert "test_reg_plain" in available_stages()


def test_duplicate_name_is_an_error():
    @register_stage("test_reg_dup")
    class First(Stage):
        config_class = _Cfg

    with pytest.raises(SoundstageError, match="already registered"):

        @register_stage("test_reg_dup")
        class Second(Stage):
            config_class = _Cfg


def test_non_stage_class_is_rejected():
    with pytest.raises(SoundstageError, match="not a soundstage Stage"):
        register_stage("test_reg_bad")(dict)


def test_stage_without_config_dataclass_is_rejected():
    with pytest.raises(SoundstageError, match="config_class"):

        @register_stage("test_reg_nocfg")
        class NoCfg(Stage):
            config_class = dict  # type: ignore[assignment]


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(StageNotFoundError) as err:
        get_stage("toy_regresor")
    assert "did you mean 'toy_regressor'" in str(err.value)
    assert "known:" in str(err.value)


def test_builtin_stage_is_loaded_lazily_through_entry_point():
    spec = registry.get_spec("toy_regressor")
    assert spec.__module__ == "soundstage.plugins.toy.spec"  # the declarations, torch-free
    cls = get_stage("toy_regressor")
    assert cls.__module__ == "soundstage.plugins.toy.stage"
    assert issubclass(cls, spec) and cls.stage_name == spec.stage_name == "toy_regressor"


def test_a_spec_whose_implementation_is_not_its_subclass_is_an_error(monkeypatch):
    from soundstage.stage_spec import StageConfig as Config, StageSpec

    class Stray(Stage):
        config_class = Config

    @register_stage("spec_with_stray_stage")
    class StraySpec(StageSpec):
        config_class = Config

        @classmethod
        def implementation(cls):
            return Stray

    with pytest.raises(SoundstageError, match="must subclass the spec"):
        get_stage("spec_with_stray_stage")
    monkeypatch.delitem(registry._REGISTRY, "spec_with_stray_stage")


def _write_plugin_package(root, dist, module, body, entry):
    (root / module).mkdir()
    (root / module / "__init__.py").write_text(textwrap.dedent(body))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[soundstage.stages]\n{entry}\n")


def test_third_party_plugin_discovered_by_entry_point(tmp_path, monkeypatch):
    _write_plugin_package(
        tmp_path,
        "ss_thirdparty",
        "ss_thirdparty",
        """
        from dataclasses import dataclass
        from soundstage.stage import Stage, StageConfig

        @dataclass
        class EchoConfig(StageConfig):
            gain: float = 2.0

        class EchoStage(Stage):
            '''A third-party stage declared only through an entry point.'''
            config_class = EchoConfig
        """,
        "echo_gain = ss_thirdparty:EchoStage",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "echo_gain" in available_stages()
    cls = get_stage("echo_gain")
    assert cls.__name__ == "EchoStage" and cls.stage_name == "echo_gain"
    monkeypatch.delitem(registry._REGISTRY, "echo_gain")


def test_broken_plugin_does_not_break_listing(tmp_path, monkeypatch):
    _write_plugin_package(tmp_path, "ss_broken", "ss_broken", "raise ImportError('missing dependency xyz')\n", "broken_one = ss_broken:Nope")
    monkeypatch.syspath_prepend(str(tmp_path))
    stages = list_stages()
    assert isinstance(stages["broken_one"], SoundstageError)
    assert "missing dependency xyz" in str(stages["broken_one"])
    assert isinstance(stages["toy_regressor"], type)
    with pytest.raises(SoundstageError, match="failed to import"):
        get_stage("broken_one")


def test_every_builtin_entry_point_name_matches_its_register_stage_name():
    """A built-in stage's name is written twice (pyproject entry point, @register_stage on its spec): they must
    agree, and the spec's Stage class inherits the name."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["soundstage.stages"]
    for name, target in declared.items():
        module_name, class_name = target.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert cls.stage_name == name, f"entry point {name!r} -> {target} registers as {cls.stage_name!r}"
        assert get_stage(name).stage_name == name and issubclass(get_stage(name), cls)


def test_plugins_lists_each_config_field_with_its_source_comment(capsys):
    from soundstage.cli import main

    assert main(["plugins", "toy_regressor"]) == 0
    out = capsys.readouterr().out
    assert "init_from_upstream           bool             = False  # start from the weights of a needed toy_regressor stage" in out
    assert "  hidden                       int              = 32\n" in out  # no comment: none printed


def test_plugins_lists_a_nested_configs_fields_under_dotted_names_with_the_parents_defaults(capsys):
    from soundstage.cli import main

    assert main(["plugins", "coarse_lm"]) == 0
    out = capsys.readouterr().out
    # CoarseLMConfig makes its TransformerConfig with block_size=2304 (the class default is 1024)
    assert "  model.block_size             int              = 2304  # longest sequence" in out
    assert "  optim.lr                     float            = 0.0003\n" in out
