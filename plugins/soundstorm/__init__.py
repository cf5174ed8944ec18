"""SoundStorm: parallel acoustic generation from semantic ids (an alternative to coarse_lm + fine_lm)."""
