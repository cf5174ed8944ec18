"""The diagnosis names the stage that misses its target, and does not judge a check an upstream failure decides."""
import pytest

from soundstage.plugins.audiolm.evaluation.diagnosis import diagnose


def _figures(codec_per, resyn_per, codec_voice, cont_voice, lm_ppl, probe_per=0.25):
    return {
        "semantic_tokens": {"probe": {"per": probe_per}},
        "protocol": {
            "rows": {"original": {"per": 0.15}, "codec": {"per": codec_per, "speaker_similarity": codec_voice},
                     "resynthesis": {"per": resyn_per}, "continuation": {"speaker_similarity": cont_voice}},
            "references": {"per_mismatched_transcripts": 0.9, "same_speaker": 0.9, "different_speaker": 0.2},
        },
        "lm": {"semantic_lm": {"ppl": lm_ppl, "baselines": {"bigram_ppl": 40.0}}},
    }


def _by_stage(checks):
    return {("resynthesis" if "resynthesis" in c["check"] else c["stage"]): c for c in checks if c["stage"] != "codec"} | {
        "codec_per": next(c for c in checks if c["stage"] == "codec" and "PER" in c["check"]),
        "codec_voice": next(c for c in checks if c["stage"] == "codec" and "voice" in c["check"]),
    }


def test_a_learning_run_passes_every_check():
    checks = _by_stage(diagnose(_figures(0.18, 0.3, 0.85, 0.8, 30.0)))
    assert all(c["passed"] is True for c in checks.values()), checks


def test_each_failing_stage_is_named():
    checks = _by_stage(diagnose(_figures(0.18, 0.5, 0.85, 0.4, 50.0)))
    assert checks["codec_per"]["passed"] is True
    assert checks["coarse_lm"]["passed"] is False and checks["semantic_lm"]["passed"] is False  # voice, perplexity
    assert checks["resynthesis"]["passed"] is False  # resynthesis 0.5 > 2 x 0.18


def test_an_unreadable_codec_blocks_the_checks_downstream_of_it():
    checks = _by_stage(diagnose(_figures(0.85, 0.9, 0.1, 0.1, 30.0)))
    assert checks["codec_per"]["passed"] is False and checks["codec_voice"]["passed"] is False
    # resynthesis 0.9 <= 2 x 0.85 would "pass": it cannot disagree, so it is not judged
    assert checks["resynthesis"]["passed"] is None and "codec" in checks["resynthesis"]["not_judged"]
    assert checks["coarse_lm"]["passed"] is None
    assert checks["semantic_lm"]["passed"] is True  # independent of the codec


def test_missing_figures_are_not_measured():
    checks = diagnose({})
    assert checks and all(c["passed"] is None and c["value"] is None for c in checks)


def test_the_first_steps_ceiling_says_which_acoustic_step_fails():
    figures = _figures(0.18, 0.5, 0.85, 0.8, 30.0)
    figures["roles"] = {"codec": "codec", "coarse_lm": "coarse_lm", "fine_lm": "fine_lm", "semantic_lm": "semantic_lm"}
    figures["protocol"]["first_levels"] = {"levels": 3, "per": 0.2}  # the coarse levels alone read well
    why = _by_stage(diagnose(figures))["resynthesis"]["if_failed"]
    assert "first 3 level(s) alone read at PER 0.20, within the target" in why and "coarse_lm does not follow" in why
    figures["protocol"]["first_levels"] = {"levels": 1, "per": 0.6}
    why = _by_stage(diagnose(figures))["resynthesis"]["if_failed"]
    assert "above the target" in why and "later levels" in why


def test_the_coarse_lms_teacher_forced_codes_split_its_loss_into_accuracy_and_drift():
    figures = _figures(0.18, 0.5, 0.85, 0.8, 30.0)  # codec 0.18: resynthesis target 0.36
    figures["roles"] = {"codec": "codec", "coarse_lm": "coarse_lm", "fine_lm": "fine_lm", "semantic_lm": "semantic_lm"}
    figures["protocol"]["first_levels"] = {"levels": 3, "per": 0.2, "teacher_forced_per": 0.42,
                                           "teacher_forced_accuracy": [0.49, 0.13, 0.05]}
    why = _by_stage(diagnose(figures))["resynthesis"]["if_failed"]
    assert "its accuracy is the limit" in why and "PER 0.42" in why and "0.49 / 0.13 / 0.05" in why
    figures["protocol"]["first_levels"]["teacher_forced_per"] = 0.3  # within the target: generating loses the rest
    why = _by_stage(diagnose(figures))["resynthesis"]["if_failed"]
    assert "generating from its own samples is the limit" in why and "drift takes it to 0.50" in why


def test_the_probe_on_the_semantic_ids_says_whether_the_tokens_or_the_acoustic_stages_lose_the_phones():
    figures = _figures(0.18, 0.5, 0.85, 0.8, 30.0, probe_per=0.45)  # target 0.36: the ids alone read worse
    checks = _by_stage(diagnose(figures))
    assert checks["semantic"]["passed"] is False and checks["semantic"]["value"] == 0.45
    assert "the semantic tokens limit it" in checks["resynthesis"]["if_failed"]
    assert checks["resynthesis"]["stage"] == "semantic"  # the stage to fix is the tokenizer, not the LMs
    figures["semantic_tokens"]["probe"]["per"] = 0.2  # the ids carry the phones: the acoustic stages lose them
    checks = _by_stage(diagnose(figures))
    assert checks["semantic"]["passed"] is True and checks["resynthesis"]["passed"] is False
    assert "not the semantic tokens" in checks["resynthesis"]["if_failed"]
    assert checks["resynthesis"]["stage"] == "coarse_lm / fine_lm"


def test_ids_that_pass_but_leave_less_room_than_the_codec_costs_are_named_with_the_acoustic_stages():
    # original 0.15, codec 0.18 (it adds 0.03), target 0.36; the ids alone read at 0.34: 0.02 of room
    checks = _by_stage(diagnose(_figures(0.18, 0.5, 0.85, 0.8, 30.0, probe_per=0.34)))
    assert checks["semantic"]["passed"] is True and checks["resynthesis"]["passed"] is False
    why = checks["resynthesis"]["if_failed"]
    assert "leave it no room" in why and "PER 0.34, 0.02 below the target" in why and "(0.03)" in why
    assert "not the semantic tokens" not in why
    assert checks["resynthesis"]["stage"] == "coarse_lm / fine_lm and semantic"


def _with_clips(figures, codec_edits, resyn_edits, phones=100):
    """The same figures with per-clip counts: every clip reads at the given edits out of ``phones``."""
    n = len(codec_edits)
    same, diff, voice = [0.9] * n, [0.2] * n, [0.85] * n
    figures["protocol"] |= {"clips": n, "per_clip": {
        "original": {"edits": [15] * n, "phones": [phones] * n, "speaker_similarity": same},
        "codec": {"edits": codec_edits, "phones": [phones] * n, "speaker_similarity": voice},
        "resynthesis": {"edits": resyn_edits, "phones": [phones] * n},
        "continuation": {"speaker_similarity": [0.8] * n},
        "mismatched_transcripts": {"edits": [90] * n, "phones": [phones] * n},
        "different_speaker": {"speaker_similarity": diff}}}
    rows = figures["protocol"]["rows"]
    rows["codec"]["per"] = sum(codec_edits) / (n * phones)
    rows["resynthesis"]["per"] = sum(resyn_edits) / (n * phones)
    return figures


def test_a_verdict_far_from_its_target_is_resolved_and_one_at_it_is_not():
    far = _by_stage(diagnose(_with_clips(_figures(0.18, 0.6, 0.85, 0.8, 30.0), [18] * 32, [60] * 32)))
    assert far["resynthesis"]["passed"] is False and far["resynthesis"]["resolved"] is True
    low, high = far["resynthesis"]["margin_interval"]
    assert low == high == pytest.approx(2 * 0.18 - 0.6)  # identical clips: no spread

    # half the clips just under twice the codec, half just over: the mean is at the target, the clips cannot tell
    near = _by_stage(diagnose(_with_clips(_figures(0.18, 0.36, 0.85, 0.8, 30.0), [18] * 32, [30, 42] * 16)))
    low, high = near["resynthesis"]["margin_interval"]
    assert low < 0 < high and near["resynthesis"]["resolved"] is False


def test_checks_without_per_clip_data_carry_no_interval():
    checks = diagnose(_figures(0.18, 0.3, 0.85, 0.8, 30.0))
    assert not any("margin_interval" in c for c in checks)


def test_a_fine_lm_whose_levels_cost_content_is_named():
    """The resynthesis's generated codes, decoded from their coarse levels alone, against the same codes with
    the fine LM's levels: a fine LM at chance adds noise, and its check names it."""
    figures = _figures(0.18, 0.5, 0.85, 0.8, 30.0)
    figures["roles"] = {"codec": "codec", "coarse_lm": "coarse_lm", "fine_lm": "fine_lm", "semantic_lm": "semantic_lm"}
    figures["lm"]["fine_lm"] = {"ppl": 991.2}
    figures["protocol"]["first_levels"] = {"levels": 3, "per": 0.2, "generated_coarse_per": 0.47}
    fine = next(c for c in diagnose(figures) if c["stage"] == "fine_lm")
    assert fine["passed"] is False and fine["value"] == 0.5 and fine["target"] == 0.47
    assert "perplexity 991 per code" in fine["if_failed"]
    figures["protocol"]["first_levels"]["generated_coarse_per"] = 0.55  # its levels add content
    assert next(c for c in diagnose(figures) if c["stage"] == "fine_lm")["passed"] is True
    del figures["roles"]["fine_lm"]  # SoundStorm runs: no fine LM, no check
    figures["roles"]["soundstorm"] = "soundstorm"
    del figures["roles"]["coarse_lm"]
    assert not any(c["stage"] == "fine_lm" for c in diagnose(figures))
