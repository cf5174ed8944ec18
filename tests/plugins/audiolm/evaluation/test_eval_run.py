"""``soundstage eval`` on a real run directory: a tiny corpus of espeak voices, every stage trained
for two steps by the real pipeline, then the evaluation verb: the AudioLM table, the diagnosis, the
curves and the clips; figures finite, report self-contained."""
import argparse
import html.parser
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from soundstage.data.shard_writer import AudioShardWriter
from soundstage.data.speech_corpus import all_voices, plan_utterance, synth_utterance
from soundstage.plugins.audiolm.evaluation.cli import add_eval_command
from soundstage.plugins.audiolm.evaluation.phone_eval import semantic_phone_metrics
from soundstage.plugins.audiolm.evaluation.run_dir import RunDir
from soundstage.data.utterances import Utterance
from soundstage.recipe import load_recipe
from soundstage.runner import PipelineRunner

SR = 8000


def _corpus(root: Path) -> tuple[str, str]:
    """3 training voices x 4 utterances, 2 held-out voices x 1 (real espeak speech with phoneme timings)."""
    voices = all_voices()
    for split, vs, n in (("train", voices[:3], 12), ("val", voices[5:7], 2)):
        writer = AudioShardWriter(root / split, SR)
        for i in range(n):
            wave, meta = synth_utterance(plan_utterance(i, 1 if split == "val" else 0, [vs[i % len(vs)]]), SR)
            wave = wave[: int(3.0 * SR)]
            writer.write(f"{split}_{i:04d}", wave, {**meta, "sample_rate": SR, "duration": len(wave) / SR})
        writer.close()
    return str(root / "train"), str(root / "val")


def _recipe(train: str, val: str, run_root: Path) -> dict:
    lm = {"d_model": 16, "n_layer": 1, "n_head": 2}
    return {
        "name": "evaltiny", "seed": 0, "run_root": str(run_root),
        "data": {"sample_rate": SR, "train_shards": train, "val_shards": val},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 1,
                    "enable_progress_bar": False, "log_every_n_steps": 1},
        "stages": {
            "codec": {"plugin": "soundstream", "config": {
                "sample_rate": SR, "channels": 4, "decoder_channels": 4, "strides": [4, 5, 8], "latent_dim": 8,
                "num_quantizers": 3, "codebook_size": 16, "kmeans_iters": 2, "stft_disc_ffts": [256],
                "stft_disc_channels": 4, "wave_disc_scales": 1, "wave_disc_channels": 4, "disc_max_channels": 16,
                "mel_ffts": [256], "mel_bins": [20], "batch_size": 2, "segment_seconds": 0.5,
                "val_segment_seconds": 1.0, "log_audio_clips": 0}},
            "semantic": {"plugin": "kmeans_tokenizer", "config": {
                "sample_rate": SR, "frame_rate": 25.0, "vocab_size": 8, "n_mels": 20, "init_batches": 1,
                "batch_size": 2, "segment_seconds": 2.0, "batches_per_epoch": 2, "val_max_items": 2}},
            "tokens": {"plugin": "tokenize", "needs": ["codec", "semantic"], "config": {"batch_size": 4}},
            "semantic_lm": {"plugin": "semantic_lm", "needs": ["tokens"], "config": {
                "model": {**lm, "block_size": 128}, "semantic_vocab_size": 8, "semantic_rate": 25.0,
                "window_seconds": 2.0, "batch_size": 2}},
            "coarse_lm": {"plugin": "coarse_lm", "needs": ["tokens"], "config": {
                "model": {**lm, "block_size": 256}, "semantic_vocab_size": 8, "codebook_size": 16,
                "num_coarse_quantizers": 2, "semantic_rate": 25.0, "acoustic_rate": 50.0, "window_seconds": 2.0,
                "batch_size": 2}},
            "fine_lm": {"plugin": "fine_lm", "needs": ["tokens"], "config": {
                "model": {**lm, "block_size": 128}, "codebook_size": 16, "num_coarse_quantizers": 2,
                "num_quantizers": 3, "acoustic_rate": 50.0, "window_seconds": 0.5, "batch_size": 2}},
            "soundstorm": {"plugin": "soundstorm", "needs": ["tokens"], "config": {
                "model": {"d_model": 16, "n_layer": 1, "n_head": 2, "conv_kernel": 3}, "decoding": {"iterations": [2, 1]},
                "semantic_vocab_size": 8, "codebook_size": 16, "num_quantizers": 3, "semantic_rate": 25.0,
                "acoustic_rate": 50.0, "window_seconds": 2.0, "batch_size": 2}},
        },
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalrun")
    train, val = _corpus(root / "corpus")
    recipe_file = root / "evaltiny.yaml"
    recipe_file.write_text(OmegaConf.to_yaml(OmegaConf.create(_recipe(train, val, root / "runs"))))
    runner = PipelineRunner(load_recipe(str(recipe_file)), log=lambda _msg: None)
    runner.run()
    return runner.run_dir


def _finite_numbers(d, path=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _finite_numbers(v, f"{path}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield f"{path}{k}", v


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k == "src"]


def test_eval_command_writes_figures_and_report(run_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["eval", str(run_dir), "--num-clips", "3", "--seconds", "1", "--prompt-seconds", "1",
                              "--recognizer-steps", "3", "--speaker-steps", "3", "--probe-steps", "3", "--cache-dir", str(tmp_path / "cache")])
    assert args.func(args) == 0
    assert '"diagnosis"' in capsys.readouterr().out  # the summary is printed

    figures = json.loads((run_dir / "eval" / "eval.json").read_text())
    assert set(figures["roles"]) == {"semantic_tokenizer", "codec", "semantic_lm", "coarse_lm", "fine_lm"}
    assert figures["recipe"] == "evaltiny"
    numbers = dict(_finite_numbers({k: figures[k] for k in ("codec", "lm", "semantic_tokens", "protocol")}))
    assert numbers and all(math.isfinite(v) for v in numbers.values()), numbers

    codec = figures["codec"]
    assert codec["utterances"] == 2 and codec["mel_distance"] > 0 and -100 < codec["si_snr_db"] < 100
    for role, vocab in (("semantic_lm", 8), ("coarse_lm", 2 * 16), ("fine_lm", 16)):
        lm = figures["lm"][role]
        assert lm["batches"] >= 1 and 1 < lm["ppl"] < 10 * vocab and abs(math.log(lm["ppl"]) - lm["loss"]) < 1e-4
    base = figures["lm"]["semantic_lm"]["baselines"]
    assert base["tokens"] > 0 and 1 < base["bigram_ppl"] and 1 < base["unigram_ppl"] <= 9  # 8 ids + BOS
    assert set(figures["lm"]["coarse_lm"]["levels"]) == {"level0", "level1"}
    assert set(figures["lm"]["fine_lm"]["levels"]) == {"level2"}
    phones = figures["semantic_tokens"]
    assert 0 <= phones["pnmi"] <= 1 and 0 < phones["phone_purity"] <= 1 and phones["frames"] > 0
    assert phones["probe"]["per"] >= 0 and phones["probe"]["utterances"] == 2 and phones["probe"]["training"]["steps"] == 3

    protocol = figures["protocol"]
    assert protocol["clips"] == 2 and protocol["prompt_seconds"] == 1.0  # one utterance of each held-out voice
    rows = protocol["rows"]
    assert set(rows) == {"original", "codec", "resynthesis", "resynthesis_prompted", "continuation"}
    for row in ("original", "codec", "resynthesis"):
        assert 0 <= rows[row]["per"] and 0 <= rows[row]["per_after_prompt"]
    assert "per" not in rows["continuation"] and 0 <= rows["resynthesis_prompted"]["per_after_prompt"]
    for row in rows.values():
        assert -1 <= row["speaker_similarity"] <= 1
    assert -1 <= protocol["references"]["same_speaker"] <= 1 and "per_mismatched_transcripts" in protocol["references"]
    for row in ("original", "codec", "resynthesis"):  # the per-clip counts add up to the figure; its interval is ordered
        counts = protocol["per_clip"][row]
        assert len(counts["edits"]) == 2 and sum(counts["edits"]) / sum(counts["phones"]) == pytest.approx(rows[row]["per"])
        low, high = protocol["intervals"][row]["per"]
        assert 0 <= low <= high
    assert set(protocol["per_clip"]) >= {"mismatched_transcripts", "different_speaker"}
    assert len(protocol["clip_keys"]) == 2 and len(set(protocol["clip_keys"])) == 2  # eval-compare checks them
    assert protocol["semantic_plausibility"]["tokens"] > 0
    words = figures.get("words")  # whole English utterances with text, when pocketsphinx is installed
    if importlib.util.find_spec("pocketsphinx"):
        assert set(words["rows"]) == {"original", "codec", "resynthesis"} and words["reference_words"] > 0
        assert all(0 <= r["wer"] for r in words["rows"].values())
        assert "Word error rate" in (run_dir / "eval" / "report.html").read_text()
    else:
        assert words is None and any("pocketsphinx" in n for n in figures["notes"])
    assert protocol["first_levels"]["levels"] == 2 and 0 <= protocol["first_levels"]["per"]
    assert 0 <= protocol["first_levels"]["teacher_forced_per"] and len(protocol["first_levels"]["teacher_forced_accuracy"]) == 2
    assert all(0 <= a <= 1 for a in protocol["first_levels"]["teacher_forced_accuracy"])
    assert 0 <= protocol["first_levels"]["generated_coarse_per"]  # the resynthesis's own codes, fine levels dropped
    assert len(protocol["per_clip"]["resynthesis_coarse_levels"]["edits"]) == 2  # paired with the resynthesis row
    checks = {c["stage"]: c for c in figures["diagnosis"]}
    assert {"codec", "coarse_lm", "fine_lm", "semantic_lm", "evaluation"} <= set(checks)
    for c in figures["diagnosis"]:  # two steps of training: each check measured, and judged unless an upstream one fails
        assert c["value"] is not None and (c["passed"] in (True, False) or c["not_judged"])
    assert figures["measuring_models"]["phones"]["steps"] > 0 and figures["measuring_models"]["speaker"]["voices"] == 3

    report = run_dir / "eval" / "report.html"
    text = report.read_text()
    assert "Diagnosis" in text and "AudioLM's table" in text and "<svg" in text  # curves from the TensorBoard events
    for stage in ("codec", "semantic_lm", "coarse_lm", "fine_lm"):
        assert f"<h3>{stage}</h3>" in text
    links = _Links()
    links.feed(text)
    assert len([s for s in links.links if s.endswith(".wav")]) == 10 and len([s for s in links.links if s.endswith(".png")]) == 2
    for src in links.links:
        assert not Path(src).is_absolute() and (report.parent / src).is_file(), src
    png = (report.parent / "clip00_spectrogram.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    assert int.from_bytes(png[16:20], "big") >= 800  # wide enough to see phones
    import soundfile as sf

    cont_wave, sr = sf.read(report.parent / "clip00_continuation.wav")
    assert sr == SR and abs(len(cont_wave) - SR) <= SR // 10  # one second generated


def test_phone_figures_skip_audio_without_phonemes(run_dir):
    tokenizer = RunDir.open(run_dir).model("semantic_tokenizer")
    music = [Utterance("piece", np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1, {"piece": 1})]
    assert "skipped" in semantic_phone_metrics(tokenizer, music)


def _quick_eval(run_dir: Path, tmp_path: Path, *options: str) -> dict:
    """``soundstage eval`` of two 1 s clips with barely trained measuring models and no probe: its eval.json."""
    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["eval", str(run_dir), *options, "--num-clips", "2", "--seconds", "1", "--prompt-seconds", "1",
                              "--recognizer-steps", "2", "--speaker-steps", "2", "--probe-steps", "0",
                              "--cache-dir", str(tmp_path / "cache")])
    assert args.func(args) == 0
    return json.loads((run_dir / "eval" / "eval.json").read_text())


def test_eval_of_the_soundstorm_acoustic_generator(run_dir, tmp_path):
    figures = _quick_eval(run_dir, tmp_path, "--acoustic", "soundstorm")
    assert figures["roles"]["soundstorm"] == "soundstorm" and "coarse_lm" not in figures["roles"]
    assert set(figures["lm"]) == {"semantic_lm", "soundstorm"} and figures["lm"]["soundstorm"]["batches"] >= 1
    assert "probe" not in figures["semantic_tokens"]  # --probe-steps 0: no probe
    rows = figures["protocol"]["rows"]
    assert 0 <= rows["resynthesis"]["per"] and -1 <= rows["continuation"]["speaker_similarity"] <= 1
    assert figures["protocol"]["first_levels"]["levels"] == 1  # SoundStorm makes level 0 first
    assert not {"teacher_forced_per", "generated_coarse_per"} & set(figures["protocol"]["first_levels"])  # coarse + fine only
    assert not any(c["stage"] == "fine_lm" for c in figures["diagnosis"])
    assert any(c["stage"] == "soundstorm" for c in figures["diagnosis"])  # the voice check names the generator


def test_decoding_only_the_coarse_levels_drops_the_fine_lm_check(run_dir, tmp_path):
    """With ``--decode-levels`` at the coarse LM's level count the fine LM adds nothing to the resynthesis, so
    the "fine LM's levels do not cost content" check has nothing to compare and is left out."""
    figures = _quick_eval(run_dir, tmp_path, "--decode-levels", "2")
    first = figures["protocol"]["first_levels"]
    assert first["levels"] == 2 and "teacher_forced_per" in first and "generated_coarse_per" not in first
    assert "resynthesis_coarse_levels" not in figures["protocol"]["per_clip"]
    assert not any("fine LM's levels" in c["check"] for c in figures["diagnosis"])
