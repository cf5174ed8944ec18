"""Tiny SoundStorm configs and the LM tests' real toy pieces (in-memory tokens, toy codec and tokenizer)."""
from __future__ import annotations

import sys
from pathlib import Path

# The LM tests' helpers (token data, toy codec / semantic tokenizer, quick trainer) serve these tests too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lm"))

from lm_test_helpers import (AC_RATE, CODEBOOK, Q, SEM_RATE, SEM_VOCAB, InMemoryTokens, RecordRanks,  # noqa: E402,F401
                             ToyCodec, ToySemanticTokenizer, fast_optim, quick_trainer, semantic_config)

from soundstage.config import build_config  # noqa: E402
from soundstage.plugins.soundstorm.stage import SoundStormConfig  # noqa: E402

WINDOW_FRAMES = 20  # 1 s at AC_RATE


def soundstorm_config(**kw) -> SoundStormConfig:
    """A 2-block d=32 SoundStorm over the LM tests' token sizes, with a 1 s (20-frame) window; ``kw`` as in a recipe."""
    return build_config(SoundStormConfig, {
        "model": {"d_model": 32, "n_layer": 2, "n_head": 2, "conv_kernel": 3},
        "optim": vars(fast_optim()), "decoding": {"iterations": [4, 1]},
        "semantic_vocab_size": SEM_VOCAB, "codebook_size": CODEBOOK, "num_quantizers": Q,
        "semantic_rate": SEM_RATE, "acoustic_rate": AC_RATE, "window_seconds": WINDOW_FRAMES / AC_RATE,
    } | kw)
