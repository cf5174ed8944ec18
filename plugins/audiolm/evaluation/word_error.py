"""Word error rate of English content with pocketsphinx (its bundled US English model, from pip).

Scored on whole held-out utterances whose metadata has a ``text`` (and no language, or English), one
at a time so no utterance is cut: the original (the floor), the codec's reconstruction, and acoustic
resynthesis from the utterance's own semantic tokens. A recognizer trained on real speech measures
how natural the content sounds: on the espeak-ng corpus even the originals score near 0.9; on the
natural-voice corpus (``data.engine: kokoro``) about 0.3.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
import torch

from soundstage.data.audio_io import resample
from soundstage.data.utterances import Utterance
from soundstage.errors import SoundstageError

from .phone_recognizer import phone_error_rate as error_rate  # corpus-level edit rate over any tokens

RECOGNIZER_RATE = 16000
WORD_ROWS = ("original", "codec", "resynthesis")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept)."""
    return re.findall(r"[a-z']+", text.lower())


def english_texts(utterances: list[Utterance], limit: int) -> list[Utterance]:
    """Up to ``limit`` utterances with an English (or unlabelled) ``text``."""
    chosen = [u for u in utterances if words(str(u.meta.get("text") or "")) and u.meta.get("language") in (None, "en")]
    return chosen[:limit]


class WordRecognizer:
    """pocketsphinx's decoder as ``transcribe(wave [T] at sample_rate) -> words``.

    Each utterance gets a fresh decoder (~0.5 s to load): a decoder adapts its state across the
    utterances it hears, so the same audio could read differently depending on what came before it
    (1 of 19 real recordings did when their order was reversed), and the rows of a table, transcribed
    in turn, would not be independent."""

    def __init__(self, sample_rate: int) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise SoundstageError("word error rates need pocketsphinx: pip install 'soundstage[natural]'") from exc
        self.sample_rate = sample_rate
        self.new_decoder = lambda: Decoder(samprate=RECOGNIZER_RATE, loglevel="FATAL")

    def transcribe(self, wave: np.ndarray) -> list[str]:
        wave = resample(np.asarray(wave, dtype=np.float32), self.sample_rate, RECOGNIZER_RATE)
        pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16).tobytes()
        decoder = self.new_decoder()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return words(hyp.hypstr) if hyp else []


@torch.no_grad()
def word_error_rows(pipeline: Any, utterances: list[Utterance], recognizer: WordRecognizer,
                    log: Callable[[str], None] = print, seed: int = 0) -> dict[str, Any]:
    """WER of each of ``WORD_ROWS`` over ``utterances`` (whole, one at a time), with the transcripts of the first."""
    gen = pipeline.generator
    device = next(pipeline.models["codec"].parameters()).device
    refs = [words(str(u.meta["text"])) for u in utterances]
    hyps: dict[str, list[list[str]]] = {row: [] for row in WORD_ROWS}
    rng = torch.Generator(device=device).manual_seed(seed)
    log(f"[eval] word error rates on {len(utterances)} whole English utterances (pocketsphinx)")
    for u in utterances:
        wave = torch.from_numpy(u.wave.astype(np.float32))[None].to(device)
        codec = gen.codec.decode(gen.codec.encode(wave, num_quantizers=gen.num_quantizers))[0, : wave.shape[1]]
        resyn = gen.from_semantic(gen.semantic_tokenizer.encode(wave), generator=rng)[0]
        for row, out in zip(WORD_ROWS, (u.wave, codec.float().cpu().numpy(), resyn.float().cpu().numpy())):
            hyps[row].append(recognizer.transcribe(out))
    return {"utterances": len(utterances), "reference_words": sum(len(r) for r in refs),
            "rows": {row: {"wer": error_rate(hyps[row], refs)} for row in WORD_ROWS},
            "example": {"reference": " ".join(refs[0]), **{row: " ".join(hyps[row][0]) for row in WORD_ROWS}}
            if utterances else {}}
