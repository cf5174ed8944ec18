"""A ctypes binding to libespeak-ng as shipped by the ``espeakng-loader`` wheel (no system package).

Synthesis runs in synchronous retrieval mode: espeak-ng hands each block of 16-bit samples and
its events (words, phonemes with IPA names) to a Python callback, so we get the waveform and
phoneme timings of an utterance in one call. libespeak-ng keeps global state, so one
``Espeak`` per process; it is not thread safe.
"""
from __future__ import annotations

import ctypes
import json
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Values from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the utterance
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Utterance:
    """One synthesised utterance: int16-range float samples at ``sample_rate`` and its phonemes."""

    wave: np.ndarray  # float32 [T] in [-1, 1]
    sample_rate: int
    phonemes: list[dict] = field(default_factory=list)  # {"phoneme", "start", "end"} seconds
    words: list[dict] = field(default_factory=list)  # {"start", "text_position", "length"}
    phoneme_words: list[int] = field(default_factory=list)  # per phoneme: the index of its word in ``words``


class Espeak:
    """Process-wide handle on libespeak-ng (created once by :func:`get_espeak`)."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        # espeak-ng draws jitter (flutter, breath, klatt noise) from its own RNG and libc's rand();
        # seeding both before each utterance makes synthesis reproducible.
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._libc = ctypes.CDLL(None)
        self._libc.srand.argtypes = [ctypes.c_uint]
        # The path argument is the folder that *contains* espeak-ng-data.
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
        )
        if rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise (espeak-ng-data not found?)")
        self.sample_rate = int(rate)  # 22050 for the bundled voices
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str, int, int]] = []
        self._callback = _Callback(self._on_synth)  # keep a reference: the C side holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    def _on_synth(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = ev.id.string.decode("utf-8", errors="replace")
                self._events.append((_EVENT_PHONEME, ev.audio_position, name, 0, 0))
            elif ev.type == _EVENT_WORD:
                self._events.append((_EVENT_WORD, ev.audio_position, "", ev.text_position, ev.length))
            i += 1
        return 0  # continue synthesis

    def synth(
        self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50, seed: int = 0
    ) -> Utterance:
        """Synthesise ``text`` with ``voice`` (an espeak name such as ``"en-us+f3"``).

        ``rate`` is in words per minute (80..450), ``pitch`` and ``pitch_range`` in 0..100;
        the same arguments and ``seed`` give the same samples (on POSIX, see :meth:`_synth_forked`).
        """
        args = (text, voice, int(rate), int(pitch), int(pitch_range), int(seed))
        with self._lock:
            samples, events = self._synth_forked(*args) if hasattr(os, "fork") else self._synth_here(*args)
        wave = samples.astype(np.float32) / 32768.0
        duration = len(wave) / self.sample_rate
        return Utterance(wave, self.sample_rate, _phoneme_spans(events, duration), _words(events), _phoneme_words(events))

    def _synth_forked(self, *args) -> tuple[np.ndarray, list]:
        """Synthesise in a forked child so this process's espeak state stays pristine.

        libespeak-ng keeps synthesis state (oscillator phases, jitter counters) in statics that
        neither a seed nor espeak_Terminate resets, so an utterance would depend on the ones
        before it. A child forked from a process that never synthesised starts from the same
        state every time, which makes the corpus reproducible; fork costs ~1 ms.
        """
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesise, send (header, int16 samples) through the pipe, exit
            code = 0
            try:
                os.close(read_fd)
                samples, events = self._synth_here(*args)
                header = json.dumps({"events": events}).encode()
                with os.fdopen(write_fd, "wb") as out:
                    out.write(struct.pack("<QQ", len(header), samples.nbytes) + header + samples.tobytes())
            except BaseException as exc:  # report the error text to the parent
                code = 1
                try:
                    os.write(write_fd, struct.pack("<QQ", 0, 0) + str(exc).encode()[:4000])
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(pid, 0)
        header_len, nbytes = struct.unpack("<QQ", data[:16]) if len(data) >= 16 else (0, 0)
        if status != 0 or len(data) < 16 + header_len + nbytes:
            raise RuntimeError(f"espeak-ng synthesis failed: {data[16:].decode(errors='replace') or 'no output'}")
        events = [tuple(e) for e in json.loads(data[16 : 16 + header_len])["events"]]
        samples = np.frombuffer(data[16 + header_len : 16 + header_len + nbytes], dtype=np.int16)
        return samples, events

    def _synth_here(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int):
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        lib.espeak_SetParameter(_PARAM_RANGE, pitch_range, 0)
        self._chunks, self._events = [], []
        lib.espeak_ng_SetRandSeed(seed)
        self._libc.srand(seed & 0xFFFFFFFF)
        data = text.encode("utf-8")
        err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for voice {voice!r}")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples.astype(np.int16), list(self._events)


def _phoneme_spans(events: list[tuple], duration: float) -> list[dict]:
    """Phoneme events carry start times only; a phoneme ends where the next one starts."""
    # "(en)"-style entries mark a language switch inside the utterance, not a sound.
    starts = [
        (pos / 1000.0, name.strip())
        for kind, pos, name, _, _ in events
        if kind == _EVENT_PHONEME and name.strip() and not name.startswith("(")
    ]
    spans = []
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else duration
        spans.append({"phoneme": name, "start": round(start, 4), "end": round(max(end, start), 4)})
    return spans


def _phoneme_words(events: list[tuple]) -> list[int]:
    """The word of each phoneme of :func:`_phoneme_spans`: espeak sends a word's event before its phonemes'
    (times alone are ambiguous: a word may be stamped at the start of the previous word's last phoneme)."""
    out, word = [], -1
    for kind, _, name, _, _ in events:
        if kind == _EVENT_WORD:
            word += 1
        elif kind == _EVENT_PHONEME and name.strip() and not name.startswith("("):
            out.append(max(word, 0))
    return out


def _words(events: list[tuple]) -> list[dict]:
    return [
        {"start": pos / 1000.0, "text_position": tp, "length": ln}
        for kind, pos, _, tp, ln in events
        if kind == _EVENT_WORD
    ]


_INSTANCE: Espeak | None = None


def get_espeak() -> Espeak:
    """The process-wide espeak-ng handle (initialised on first use)."""
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = Espeak()
    return _INSTANCE
