"""The declarations of the tokenizer roles (torch-free): what a semantic tokenizer or a codec reads and
makes. A plugin's spec derives from one of these; its Stage from the matching class of ``roles.py``."""
from __future__ import annotations

from typing import ClassVar

from soundstage.stage_spec import StageSpec


class TokenizerSpec(StageSpec):
    """A stage that reads audio and makes one token stream, ``token_kind``."""

    consumes: ClassVar[tuple[str, ...]] = ("audio",)
    token_kind: ClassVar[str] = ""


class SemanticTokenizerSpec(TokenizerSpec):
    """Audio -> semantic ids in ``0..vocab_size-1``."""

    produces: ClassVar[tuple[str, ...]] = ("semantic",)
    token_kind: ClassVar[str] = "semantic"


class CodecSpec(TokenizerSpec):
    """Audio <-> acoustic codes in ``0..codebook_size-1``, ``levels`` RVQ levels."""

    produces: ClassVar[tuple[str, ...]] = ("acoustic",)
    token_kind: ClassVar[str] = "acoustic"
