"""`generate` and `export` refuse lengths and paths they cannot honour, in one line; long outputs show progress."""
import json

import pytest
import torch

from soundstage.cli import main
from soundstage.plugins.lm.sampling import SamplingConfig, decode, decoding_progress
from soundstage.plugins.lm.transformer import Transformer, TransformerConfig
from soundstage.recipe import load_recipe

ROLES = {"codec": "codec", "semantic_tokenizer": "semantic", "semantic_lm": "semantic_lm",
         "coarse_lm": "coarse_lm", "fine_lm": "fine_lm"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """speech_tiny's untrained models saved as a bundle (generation needs models, not good ones)."""
    root = tmp_path_factory.mktemp("bundle")
    recipe = load_recipe("speech_tiny")
    roles = {}
    for role, name in ROLES.items():
        plan = recipe.stages[name]
        plan.stage_class(plan.config).save_pretrained(root / f"{name}.safetensors")
        roles[role] = {"stage": name, "file": f"{name}.safetensors"}
    (root / "bundle.json").write_text(json.dumps({"format": 1, "roles": roles}))
    return root


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("seconds, message", [
    ("nan", "--seconds must be finite and > 0, got nan"),
    ("inf", "--seconds must be finite and > 0, got inf"),
    ("-1", "--seconds must be finite and > 0, got -1.0"),
    ("0", "--seconds must be finite and > 0, got 0.0"),
    ("100000", "--seconds 100000 is above --max-seconds 600; raise --max-seconds"),
])
def test_bad_lengths_are_refused_before_loading_anything(tmp_path, capsys, seconds, message):
    code = main(["generate", str(tmp_path / "no-such-run"), "--unconditional", "--seconds", seconds,
                 "--out", str(tmp_path / "x.wav")])
    assert code == 2 and message in _error(capsys)
    assert not (tmp_path / "x.wav").exists()


def test_unconditional_shorter_than_one_semantic_token_is_a_clear_error(bundle, tmp_path, capsys):
    code = main(["generate", str(bundle), "--unconditional", "--seconds", "0.01", "--out", str(tmp_path / "x.wav")])
    assert code == 2
    assert "--seconds 0.01 is shorter than one semantic token (0.04 s at 25 tokens/s)" in _error(capsys)


def test_a_short_unconditional_sample_is_written(bundle, tmp_path, capsys):
    assert main(["generate", str(bundle), "--unconditional", "--seconds", "0.2", "--seed", "0",
                 "--out", str(tmp_path / "x.wav")]) == 0
    assert (tmp_path / "x.wav").is_file() and "wrote" in capsys.readouterr().out


def test_decoding_shows_progress_only_when_asked(capsys):
    model = Transformer(TransformerConfig(d_model=16, n_layer=1, n_head=2, block_size=64), vocab_size=8)
    prompt = torch.zeros(1, 1, dtype=torch.long)
    decode(model, prompt, [(0, 8)] * 20, SamplingConfig())
    assert "decoding" not in capsys.readouterr().err
    with decoding_progress():
        decode(model, prompt, [(0, 8)] * 20, SamplingConfig())
    assert "decoding" in capsys.readouterr().err and "20/20" not in capsys.readouterr().out


def test_export_into_a_file_or_into_the_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(load_recipe("toy").to_yaml())
    wav = tmp_path / "some_file.wav"
    wav.write_bytes(b"RIFF")
    assert main(["export", str(run), str(wav)]) == 2
    assert f"{wav} exists and is not a directory" in _error(capsys)
    assert main(["export", str(run), str(run / "bundle")]) == 2
    assert "is inside the run directory" in _error(capsys)


@pytest.mark.parametrize("verb", [["generate", "RUN", "--unconditional", "--out", "x.wav"], ["eval", "RUN"]])
def test_generate_and_eval_take_the_same_sampling_overrides(verb):
    from soundstage.cli import build_parser
    from soundstage.plugins.audiolm.cli import sampling_overrides

    args = build_parser().parse_args(verb + ["--coarse-temperature", "0.9", "--coarse-top-k", "50", "--coarse-guidance",
                                             "2", "--soundstorm-temperature", "0", "--fine-top-p", "0.8"])
    assert sampling_overrides(args) == {"semantic": {}, "coarse": {"temperature": 0.9, "top_k": 50, "guidance": 2.0},
                                        "fine": {"top_p": 0.8}, "soundstorm": {"temperature": 0.0}}
    args = build_parser().parse_args(verb + ["--coarse-level-guidance", "1.5,1,1", "--coarse-level-temperature", "0.7,0.4,.4"])
    assert sampling_overrides(args)["coarse"] == {"level_guidance": [1.5, 1.0, 1.0], "level_temperature": [0.7, 0.4, 0.4]}
    assert "codec" not in sampling_overrides(args)
    assert sampling_overrides(build_parser().parse_args(verb + ["--decode-levels", "3"]))["codec"] == {"levels": 3}
