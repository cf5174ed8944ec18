"""The table's 95% intervals: a bootstrap over clips that keeps the rows paired."""
import numpy as np
import pytest

from soundstage.plugins.audiolm.evaluation.uncertainty import figure_intervals, interval, paired_resamples


def _protocol(edits, phones, sims):
    return {"clips": len(edits), "per_clip": {"codec": {"edits": edits, "phones": phones, "speaker_similarity": sims},
                                              "resynthesis": {"edits": edits, "phones": phones}}}


def test_identical_clips_give_a_zero_width_interval_at_the_figure():
    spans = figure_intervals(_protocol([3] * 20, [10] * 20, [0.5] * 20))
    assert spans["codec"]["per"] == pytest.approx([0.3, 0.3]) and spans["codec"]["speaker_similarity"] == pytest.approx([0.5, 0.5])


def test_the_interval_holds_the_figure_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)

    def width(n):
        phones = rng.integers(20, 60, n)
        edits = rng.binomial(phones, 0.4)
        low, high = figure_intervals(_protocol(edits.tolist(), phones.tolist(), rng.uniform(0, 1, n).tolist()))["codec"]["per"]
        assert low <= edits.sum() / phones.sum() <= high
        return high - low

    assert width(256) < 0.7 * width(16)  # about 1/sqrt(clips): 4x narrower for 16x the clips


def test_rows_are_resampled_together():
    """Two rows with the same per-clip counts differ by exactly 0 on every resample, however wide each one's interval."""
    rng = np.random.default_rng(1)
    phones = rng.integers(20, 60, 32)
    sampled = paired_resamples(_protocol(rng.binomial(phones, 0.5).tolist(), phones.tolist(), [0.1] * 32))
    assert interval(sampled["codec"]["per"])[1] - interval(sampled["codec"]["per"])[0] > 0.02
    assert interval(sampled["resynthesis"]["per"] - sampled["codec"]["per"]) == [0.0, 0.0]


def test_no_per_clip_data_or_one_clip_gives_no_interval():
    assert figure_intervals({"clips": 5}) == {} and figure_intervals(_protocol([1], [4], [0.2])) == {}
