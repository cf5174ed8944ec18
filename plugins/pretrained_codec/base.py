"""What the pretrained-codec stages share: finding and checking the checkpoint, loading, saving, the job.

The stage is a job (never trained): its run checks the checkpoint on ``device`` with one second of
audio and reports its numbers; the runner then exports it (``exports_model``). With ``copy_weights``
the exported file carries the checkpoint's own tensors (under their original names) and its
config.json, and loading rebuilds the model through transformers' ``from_pretrained``; without, it
records the absolute ``path``, the config.json and the weights' digest, all checked at every load.
What the stage learns from the checkpoint goes only into the exported copy of its config: the
recipe's config object is never changed (it is what the stage's fingerprint is made from).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from soundstage.checkpoint import save_stage_file
from soundstage.errors import SoundstageError
from soundstage.stage import Stage, StageContext

from .checkpoint import (
    CodecSource, checked_family, codec_facts, files_sha256, inspect_checkpoint, load_model, model_from_tensors, read_tensors,
)
from .codec_model import PretrainedCodec
from .config import CheckpointConfig, declared_problems
from .spec import CheckpointSpec

PREFIX = "checkpoint."  # the checkpoint's tensors inside an exported stage file, under their own names


class PretrainedCodecBase(CheckpointSpec, Stage):
    """Base of the stages that use a local transformers codec checkpoint as is (``self.codec``)."""

    config: CheckpointConfig

    def __init__(self, config: CheckpointConfig, model: torch.nn.Module | None = None) -> None:
        super().__init__(config)
        c = config
        where = f"{self.stage_name or type(self).__name__}: config.path"
        self._tensor_files: tuple[list[Path], str] | None = None  # where save_pretrained re-reads the tensors
        self._digest = ""  # sha256 of the checkpoint's weight files, once computed
        self.directory: Path | None = None  # the checkpoint directory it was loaded from (None: from a stage file)
        if model is None:
            source = self._open_directory(where)
            family, raw = source.family, source.raw_config
            self.directory = source.directory
        else:
            raw = json.loads(c.hf_config)
            family = checked_family(raw, where, "the saved config.json")
        self._check_family(family, where)
        facts = codec_facts(family, raw, where)  # every number is checked before a weight is read
        problems = declared_problems(c, facts, f"{c.path} (config.json)") + self.contract_problems(c, facts)
        if problems:
            raise SoundstageError(f"{self.stage_name}: {problems[0]}")
        if model is None:
            model = load_model(source, where)
            self._tensor_files = (source.weight_files, "")
        self.family, self.facts, self.raw_config = family, facts, raw
        self.codec = PretrainedCodec(model, family, facts, c.sample_rate)

    def _open_directory(self, where: str) -> CodecSource:
        """The checked checkpoint at ``config.path``; an exported model that records it must find it unchanged."""
        c = self.config
        source = inspect_checkpoint(c.path, where)
        if c.hf_config and json.loads(c.hf_config) != source.raw_config:
            raise SoundstageError(f"{where}: {source.directory}/config.json changed since this model was made")
        if c.weights_sha256 and self._weights_digest(source.weight_files) != c.weights_sha256:
            raise SoundstageError(f"{where}: the weights in {source.directory} changed since this model was made "
                                  "(sha256 differs); re-run the stage that made it")
        return source

    # --- job ----------------------------------------------------------------------------------------
    def run(self, ctx: StageContext) -> dict[str, Any]:
        """Check the codec on ``device`` with one second of noise; report its numbers (the export follows)."""
        c = self.config
        if ctx.data.sample_rate != c.sample_rate:
            raise SoundstageError(f"stages.{ctx.name}.config.sample_rate: {c.sample_rate} Hz but data.sample_rate "
                                  f"is {ctx.data.sample_rate} Hz (interpolate it: ${{data.sample_rate}})")
        device = _device(c.device, f"stages.{ctx.name}.config.device")
        self.to(device)
        try:
            start = time.monotonic()
            probe = self.probe(torch.randn(1, c.sample_rate, device=device) * 0.1)
            probe["realtime_factor"] = round(1.0 / max(time.monotonic() - start, 1e-9), 2)
        finally:
            self.to("cpu")
        f = self.facts
        outputs: dict[str, Any] = {
            **self.token_info(),
            "checkpoint": {"model_type": f.model_type, "path": str(self.directory), "codec_sample_rate": f.sample_rate,
                           "codec_hop_length": f.hop_length, "levels_available": f.num_quantizers,
                           "weights_sha256": self._weights_digest(), "copy_weights": c.copy_weights},
            "probe": probe,
        }
        if not c.copy_weights:  # a path among the outputs: the codec's files join this stage's product hash
            outputs["codec_files"] = str(self.directory)
        return outputs

    def probe(self, wave: Tensor) -> dict[str, Any]:
        """Encode (and decode) ``wave`` [1, T] once; raise if the codes break the contract."""
        raise NotImplementedError

    def token_info(self) -> dict[str, Any]:
        """The token numbers this stage reports in its done marker."""
        raise NotImplementedError

    @property
    def sample_rate(self) -> int:
        """Rate of the audio ``encode`` takes (the pipeline's, not the codec's own: it is resampled)."""
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        """Code (token) frames per second."""
        return self.facts.frame_rate

    @property
    def hop_length(self) -> float:
        """Samples at ``sample_rate`` per frame; not whole when the codec resamples (16 kHz / 75 Hz = 213.3)."""
        return self.sample_rate / self.frame_rate

    def train(self, mode: bool = True) -> "PretrainedCodecBase":
        super().train(mode)
        self.codec.model.eval()  # never trained: no quantizer dropout, whatever Lightning asks
        return self

    # --- export -------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, extra: dict[str, Any] | None = None,
                        state_dict: dict[str, Tensor] | None = None) -> Path:
        """The stage file: the checkpoint's own tensors and config.json (copy_weights) or only the config."""
        if self._tensor_files is None:
            raise SoundstageError(f"{self.stage_name}: this model was not loaded from files it could export")
        c = self.config
        saved = dataclasses.replace(c, hf_config=json.dumps(self.raw_config))
        tensors: dict[str, Tensor] = {}
        if c.copy_weights:
            files, prefix = self._tensor_files
            tensors = {PREFIX + k[len(prefix):]: v for k, v in read_tensors(files).items() if k.startswith(prefix)}
        else:  # where to find it again, and how to know it is the same
            saved = dataclasses.replace(saved, path=str(self.directory), weights_sha256=self._weights_digest())
        return save_stage_file(path, self.stage_name, saved, tensors, extra=extra)

    def _weights_digest(self, files: list[Path] | None = None) -> str:
        if not self._digest:
            self._digest = files_sha256(files if files is not None else self._tensor_files[0])  # type: ignore[index]
        return self._digest

    @classmethod
    def from_saved(cls, config: CheckpointConfig, state_dict: dict[str, Tensor], source: Path) -> Stage:
        assert isinstance(config, CheckpointConfig)
        if not config.copy_weights:
            try:
                return cls(config)
            except SoundstageError as exc:
                raise SoundstageError(f"{source} records the codec's directory instead of carrying it "
                                      f"(copy_weights: false): {exc}") from exc
        tensors = {k[len(PREFIX):]: v for k, v in state_dict.items() if k.startswith(PREFIX)}
        if not tensors or not config.hf_config:
            raise SoundstageError(f"{source}: carries no codec checkpoint (weights or config.json)")
        raw = json.loads(config.hf_config)
        model = model_from_tensors(checked_family(raw, str(source), "its config.json"), raw, tensors, str(source))
        stage = cls(config, model=model)
        stage._tensor_files = ([source], PREFIX)
        return stage


def _device(name: str, where: str) -> torch.device:
    try:
        device = torch.device(name)
        torch.empty(0, device=device)  # an unavailable accelerator fails here
    except (RuntimeError, AssertionError) as exc:
        raise SoundstageError(f"{where}: cannot use device {name!r} here ({str(exc).splitlines()[0]})") from exc
    return device
