"""Text -> espeak-ng IPA phonemes -> Kokoro's input symbols, keeping track of which symbols each phoneme became.

espeak-ng (the binding in ``data/espeak.py``) reads the text and reports its phonemes, with IPA names
and times, and the word of each; we separate the words with spaces, put back the punctuation that
follows each word (Kokoro phrases with it), and respell every phoneme in Kokoro v1.0's inventory
(misaki's conventions: one letter per diphthong and affricate, ``A I O W Y Q``, ``ʤ ʧ ʦ ʣ``;
American English drops length marks). A phoneme with a symbol outside the model's vocabulary is
reported in ``missing``; the caller skips such utterances.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

# The espeak voice that phonemizes each accent a natural voice can have.
ACCENTS: dict[str, tuple[str, str]] = {  # accent -> (text language, espeak voice)
    "en-us": ("en", "en-us"),
    "en-gb": ("en", "en-gb-x-rp"),
    "fr": ("fr", "fr"),
    "es": ("es", "es"),
    "de": ("de", "de"),
}
STRESS = "ˈˌ"
PUNCTUATION = ",.!?;:—…"
# Whole-phoneme respellings, every language (misaki's single symbols for diphthongs and affricates).
_COMMON = {"aɪ": "I", "aʊ": "W", "eɪ": "A", "ɔɪ": "Y", "oʊ": "O", "əʊ": "Q",
           "dʒ": "ʤ", "tʃ": "ʧ", "ts": "ʦ", "dz": "ʣ"}
# English only: espeak's symbols that Kokoro's English training data spelled differently.
_ENGLISH = {"e": "A", "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "ʔ": "t",
            "əl": "ᵊl", "n̩": "ᵊn", "l̩": "ᵊl", "m̩": "ᵊm"}
_AMERICAN = {"ɜː": "ɜɹ", "ɪə": "iə"}
_BRITISH = {"eə": "ɛː", "iə": "ɪə"}


@lru_cache(maxsize=None)
def _table(accent: str) -> tuple[dict[str, str], re.Pattern]:
    english = accent.startswith("en")
    table = {**_COMMON, **(_ENGLISH if english else {}),
             **(_AMERICAN if accent == "en-us" else _BRITISH if accent == "en-gb" else {})}
    return table, re.compile("|".join(map(re.escape, sorted(table, key=len, reverse=True))))


def respell(phoneme: str, accent: str) -> str:
    """One espeak IPA phoneme (stress mark included) in Kokoro's symbols for ``accent``.

    Replacements apply inside a phoneme too, longest first and in one pass (espeak's ``aɪə`` is ``Iə``).
    """
    stress = "".join(c for c in phoneme if c in STRESS)
    core = "".join(c for c in phoneme if c not in STRESS and c != "-")  # "-": espeak's liaison mark (fr)
    english = accent.startswith("en")
    table, pattern = _table(accent)
    core = pattern.sub(lambda m: table[m.group(0)], core)
    if english:
        core = core.replace("ʲ", "")
        if accent == "en-us":
            core = core.replace("ː", "")
        core = core.replace("o", "ɔ")  # espeak's en "o" (in oː, oːɹ) is Kokoro's ɔ
    return stress + core


@dataclass
class Phonemized:
    """One utterance in espeak phonemes and in Kokoro symbols, aligned phoneme by phoneme."""

    phonemes: list[str]  # espeak IPA names, as the espeak corpus writes them
    espeak_spans: list[dict]  # espeak's own {"phoneme", "start", "end"} for those phonemes (its rate)
    symbols: str  # the Kokoro input string: words separated by spaces, punctuation kept
    token_ranges: list[tuple[int, int]]  # per phoneme: its [start, end) in ``symbols``
    missing: dict[str, int] = field(default_factory=dict)  # symbols outside the vocabulary -> count


def phonemize(text: str, accent: str, vocab: dict[str, int]) -> Phonemized:
    """Read ``text`` with the espeak voice of ``accent`` and respell it for Kokoro."""
    from soundstage.data.espeak import get_espeak

    if accent not in ACCENTS:
        raise ValueError(f"unknown accent {accent!r}; known: {', '.join(ACCENTS)}")
    utt = get_espeak().synth(text, ACCENTS[accent][1])
    pieces: list[str] = []
    ranges: list[tuple[int, int]] = []
    missing: dict[str, int] = {}
    pos, word = 0, -1
    for span, w in zip(utt.phonemes, utt.phoneme_words):
        if w != word:  # a new word: close the previous one with its punctuation and a space
            if word >= 0:
                tail = _punctuation_after(text, utt.words[word]) + " "
                pieces.append(tail)
                pos += len(tail)
            word = w
        sym = respell(span["phoneme"], accent)
        for c in sym:
            if c not in vocab:
                missing[c] = missing.get(c, 0) + 1
        pieces.append(sym)
        ranges.append((pos, pos + len(sym)))
        pos += len(sym)
    if word >= 0:
        pieces.append(_punctuation_after(text, utt.words[word]))
    return Phonemized([s["phoneme"] for s in utt.phonemes], utt.phonemes, "".join(pieces), ranges, missing)


def _punctuation_after(text: str, word: dict) -> str:
    """The punctuation marks right after a word (``text_position`` is espeak's 1-based character index)."""
    out, i = "", word["text_position"] - 1 + word["length"]
    while i < len(text) and (text[i] in PUNCTUATION or text[i] in "\"'”»)"):
        if text[i] in PUNCTUATION:
            out += text[i]
        i += 1
    return out
