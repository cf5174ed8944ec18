"""The soundstage command line: verbs, listings and one-line errors."""
import subprocess
import sys

from soundstage.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "soundstage.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_verbs():
    out = run_cli("--help")
    assert out.returncode == 0
    for verb in ("run", "fit", "recipe", "plugins"):
        assert verb in out.stdout


def test_plugins_lists_stage_fields_and_defaults(capsys):
    assert main(["plugins", "toy_*"]) == 0
    text = capsys.readouterr().out
    assert "toy_regressor" in text and "hidden" in text and "= 32" in text


def test_recipe_show_prints_resolved_values(capsys):
    assert main(["recipe", "show", "toy", "stages.first.config.hidden=12"]) == 0
    text = capsys.readouterr().out
    assert "hidden: 12" in text and "init_from_upstream: true" in text
    assert "${" not in text  # interpolations are resolved


def test_recipe_list_and_validate(capsys):
    assert main(["recipe", "list"]) == 0
    assert "toy" in capsys.readouterr().out
    assert main(["recipe", "validate", "toy"]) == 0
    assert "OK (2 stages: first -> second)" in capsys.readouterr().out


def test_error_is_one_line_without_traceback():
    out = run_cli("run", "toy", "stages.first.config.hiden=3")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "stages.first.config.hiden" in lines[0]


def test_debug_shows_traceback():
    out = run_cli("--debug", "recipe", "validate", "toy", "trainer.max_step=3")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_a_reader_that_leaves_early_gets_no_traceback_and_no_error():
    """`soundstage plugins | head -1`: the pipe closes under the writer; it exits quietly."""
    proc = subprocess.run(f"{sys.executable} -m soundstage.cli plugins | head -1", shell=True, capture_output=True,
                          text=True, timeout=300)
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == "", proc.stderr


def test_verbs_that_build_no_model_import_neither_torch_nor_lightning():
    """The verbs that need no model start in well under a second: torch and Lightning are not imported
    (recipe show / validate and plugins read only the torch-free stage specs)."""
    code = ("import sys; from soundstage.cli import main\n"
            "for argv in (['recipe', 'list'], ['eval', '--help'], ['--help'], ['recipe', 'validate', 'speech_small'],\n"
            "             ['recipe', 'validate', 'speech_small_soundstorm'], ['recipe', 'show', 'audiolm_paper'],\n"
            "             ['recipe', 'validate', 'speech_tiny_encodec'], ['plugins']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_lightning_warnings_about_soundstage_s_own_choices_are_silenced_and_others_kept():
    import warnings

    from lightning.pytorch.utilities.rank_zero import rank_zero_warn

    from soundstage.trainer import quiet_lightning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        rank_zero_warn("Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading")
        rank_zero_warn("Using ModelCheckpoint with manual optimization and every_n_train_steps, but no pre-optimization")
        rank_zero_warn("`LightningModule.configure_optimizers` returned `None`, this fit will run with no optimizer")
    assert [str(w.message)[:40] for w in caught] == ["`LightningModule.configure_optimizers` r"]
