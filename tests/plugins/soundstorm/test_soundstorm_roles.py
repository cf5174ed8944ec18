"""Which acoustic generator a run directory offers, and which one generation picks."""
import json

import pytest
from omegaconf import OmegaConf

from soundstage.errors import SoundstageError
from soundstage.plugins.audiolm.pipeline import all_roles, find_roles

STAGES = {
    "codec": ([], ["acoustic"]), "semantic": ([], ["semantic"]), "tokens": (["codec", "semantic"], ["tokens"]),
    "semantic_lm": (["tokens"], ["semantic_lm"]), "coarse_lm": (["tokens"], ["coarse_lm"]),
    "fine_lm": (["tokens"], ["fine_lm"]), "soundstorm": (["tokens"], ["soundstorm"]),
}


def run_dir(tmp_path, finished):
    OmegaConf.save({"stages": {name: {"needs": needs} for name, (needs, _) in STAGES.items()}}, tmp_path / "recipe.yaml")
    for name in finished:
        (tmp_path / name).mkdir()
        (tmp_path / name / "done.json").write_text(json.dumps({"produces": STAGES[name][1]}))
    return tmp_path


def test_a_run_with_both_generators_uses_coarse_and_fine_unless_asked(tmp_path):
    run = run_dir(tmp_path, list(STAGES))
    base = {"semantic_lm": "semantic_lm", "semantic_tokenizer": "semantic", "codec": "codec"}
    assert find_roles(run) == base | {"coarse_lm": "coarse_lm", "fine_lm": "fine_lm"}
    assert find_roles(run, "soundstorm") == base | {"soundstorm": "soundstorm"}
    assert set(all_roles(run)) == set(base) | {"coarse_lm", "fine_lm", "soundstorm"}
    with pytest.raises(SoundstageError, match="unknown acoustic generator 'maskgit'"):
        find_roles(run, "maskgit")


def test_a_soundstorm_run_needs_no_ar_stages(tmp_path):
    run = run_dir(tmp_path, ["codec", "semantic", "tokens", "semantic_lm", "soundstorm"])
    assert "soundstorm" in find_roles(run) and "coarse_lm" not in find_roles(run)
    with pytest.raises(SoundstageError, match="no finished coarse_fine acoustic generator"):
        find_roles(run, "coarse_fine")


def test_a_run_without_an_acoustic_generator_says_so(tmp_path):
    run = run_dir(tmp_path, ["codec", "semantic", "tokens", "semantic_lm", "coarse_lm"])
    with pytest.raises(SoundstageError, match="no finished acoustic generator"):
        find_roles(run)
