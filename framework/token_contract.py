"""The one contract between stages that make tokens and stages that read them.

A producer (a codec, a semantic tokenizer, the tokenize step that re-emits them) returns a
``TokenStream`` per kind it makes; a consumer (an LM) declares a ``TokenExpectation`` per kind it
reads. ``recipe validate`` compares them from the configs alone (``streams_problems``), the runner
compares the expectation again with the streams the tokens stage recorded, and the tokenize step
checks every id it writes against the declared vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Mapping

TOKEN_KINDS = ("semantic", "acoustic")  # the produced streams that are token streams with a contract


@dataclass(frozen=True)
class TokenStream:
    """What one token stream is, as its producer makes it."""

    kind: str  # "semantic" or "acoustic": the stream's name in token shards
    vocab_size: int | None  # semantic vocabulary, or codes per RVQ level
    frame_rate: float | None  # token frames per second
    levels: int | None = 1  # RVQ levels (1 for semantic tokens)
    sample_rate: int | None = None  # the audio rate the producer reads
    # None anywhere: not known from the config alone (a pretrained checkpoint not on this machine); the
    # run-time check, against what the tokens stage recorded, covers it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenStream":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})



@dataclass(frozen=True)
class TokenExpectation:
    """What a consumer needs of one kind of tokens; ``None`` fields are not checked."""

    kind: str
    vocab_size: int | None = None
    frame_rate: float | None = None
    levels: int | None = None  # exactly this many RVQ levels
    min_levels: int | None = None  # at least this many (a coarse LM reads the first ones)
    sample_rate: int | None = None
    keys: Mapping[str, str] = field(default_factory=dict, compare=False)  # field -> the consumer's config key


def stream_mismatches(expected: TokenExpectation, produced: TokenStream) -> list[str]:
    """Every field where ``produced`` breaks ``expected``, as ``field: expects X, gets Y``."""
    def label(name: str) -> str:
        key = expected.keys.get("levels" if name == "min_levels" else name)
        return f"{name} (config {key})" if key else name

    out = []
    for name in ("vocab_size", "frame_rate", "levels", "sample_rate"):
        want, got = getattr(expected, name), getattr(produced, name)
        if want is not None and got is not None and not math.isclose(float(want), float(got)):
            out.append(f"{label(name)}: expects {want:g}, gets {got:g}")
    if expected.min_levels is not None and produced.levels is not None and produced.levels < expected.min_levels:
        out.append(f"{label('levels')}: expects at least {expected.min_levels}, gets {produced.levels}")
    return out


def streams_problems(
    consumer: str, expectations: Iterable[TokenExpectation], available: Mapping[str, tuple[str, TokenStream | None]],
) -> list[str]:
    """One message per expectation that the available streams (kind -> (producer, stream)) break.

    A producer that makes a kind but declares no stream for it (``None``) is reported too, so a
    plugin that forgets its contract is caught at ``recipe validate`` rather than mid-training.
    """
    problems = []
    for exp in expectations:
        if exp.kind not in available:
            continue  # a missing producer is the DAG check's to report
        producer, stream = available[exp.kind]
        if stream is None:
            problems.append(f"stage {consumer!r} reads {exp.kind} tokens but stage {producer!r} declares none "
                            f"(its token_streams() returns no {exp.kind!r} stream)")
            continue
        bad = stream_mismatches(exp, stream)
        if bad:
            problems.append(f"stage {consumer!r} does not match the {exp.kind} tokens of stage {producer!r}: "
                            + "; ".join(bad))
    return problems
