"""Features from a local HuBERT / wav2vec2 / w2v-BERT checkpoint in Hugging Face ``transformers`` format.

Optional dependency (``pip install soundstage[ssl]``). Checkpoints are read from a local directory
with ``local_files_only=True``: nothing is ever downloaded. Layers above the one used are dropped,
and the kept model's architecture travels as a JSON ``spec``, so a tokenizer saved with these
weights rebuilds the model without the original directory. Frames follow the package contract:
``T // hop`` frames for ``T`` samples (raw-wave models are padded by ``receptive_field - hop``;
w2v-BERT's fbank frontend is trimmed/edge-padded to that count).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from soundstage.errors import SoundstageError
from soundstage.plugins.hf_checkpoint import checkpoint_dir, import_transformers

WAVE_MODELS = ("hubert", "wav2vec2", "data2vec-audio", "wavlm")
FBANK_MODELS = ("wav2vec2-bert",)


def _transformers():
    return import_transformers("features='ssl'")


def _build(spec: dict[str, Any]) -> tuple[nn.Module, Any]:
    """An untrained model (and w2v-BERT's feature extractor) from a spec."""
    tf = _transformers()
    config = tf.AutoConfig.for_model(spec["model_type"], **spec["config"])
    model = tf.AutoModel.from_config(config)
    extractor = None
    if spec["model_type"] in FBANK_MODELS:
        extractor = tf.SeamlessM4TFeatureExtractor(**spec["feature_extractor"])
    return model, extractor


class SSLFeatures(nn.Module):
    """A (truncated) ``transformers`` speech encoder: ``features(wave, layer)`` -> [B, T // hop, D]."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        if spec["model_type"] not in WAVE_MODELS + FBANK_MODELS:
            raise SoundstageError(
                f"unsupported SSL model type {spec['model_type']!r} (supported: {', '.join(WAVE_MODELS + FBANK_MODELS)})"
            )
        self.spec = spec
        self.model, self.extractor = _build(spec)
        self.model.eval()
        cfg = self.model.config
        if spec["model_type"] in FBANK_MODELS:
            # fbank at 100 Hz, two frames stacked per step -> 50 Hz at 16 kHz
            self.hop_length = int(spec["sample_rate"]) // 100 * int(spec["feature_extractor"].get("stride", 2))
            self.receptive_field = self.hop_length
        else:
            rf, hop = 1, 1
            for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
                rf += (k - 1) * hop
                hop *= s
            self.receptive_field, self.hop_length = rf, hop

    @classmethod
    def from_pretrained(cls, path: str | Path, layer: int) -> "SSLFeatures":
        """Load a local checkpoint directory (never downloads), keeping the layers up to ``layer``."""
        tf = _transformers()
        path = checkpoint_dir(path, "ssl_path")
        model = tf.AutoModel.from_pretrained(str(path), local_files_only=True)
        model_type = model.config.model_type
        num_layers = len(model.encoder.layers)
        if not 0 <= layer <= num_layers:
            raise SoundstageError(f"{path}: layer must be in 0..{num_layers}, got {layer}")
        pre: dict[str, Any] = {}
        if (path / "preprocessor_config.json").is_file():
            pre = json.loads((path / "preprocessor_config.json").read_text())
        keep = max(layer, 1)  # the encoder needs one layer to run; layer 0 is read before it
        model.encoder.layers = nn.ModuleList(list(model.encoder.layers)[:keep])
        model.config.num_hidden_layers = keep
        config = {k: v for k, v in model.config.to_diff_dict().items() if k not in ("model_type", "transformers_version", "architectures")}
        spec = {
            "model_type": model_type,
            "config": config,
            "sample_rate": int(pre.get("sampling_rate", 16000)),
            # wav2vec2-style extractors normalise each utterance when the checkpoint asks for it
            "normalize": bool(pre.get("do_normalize", getattr(model.config, "feat_extract_norm", "group") == "layer")),
            "feature_extractor": {k: v for k, v in pre.items() if k not in ("feature_extractor_type", "processor_class")},
        }
        out = cls(spec)
        out.model.load_state_dict(model.state_dict())
        return out

    @property
    def sample_rate(self) -> int:
        return int(self.spec["sample_rate"])

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def spec_json(self) -> str:
        return json.dumps(self.spec)

    def _inputs(self, wave: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = wave.shape
        valid = torch.arange(t, device=wave.device)[None] < lengths[:, None]  # [B, T]
        if self.extractor is not None:
            items = [w[: int(n)].float().cpu().numpy() for w, n in zip(wave, lengths)]
            enc = self.extractor(items, sampling_rate=self.sample_rate, return_tensors="pt", padding=True)
            return {"input_features": enc["input_features"].to(wave.device), "attention_mask": enc["attention_mask"].to(wave.device)}
        x = wave.float() * valid
        if self.spec["normalize"]:
            n = lengths.clamp_min(1)[:, None].float()
            mean = x.sum(-1, keepdim=True) / n
            var = ((x - mean) * valid).pow(2).sum(-1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-7) * valid
        left = (self.receptive_field - self.hop_length) // 2
        x = F.pad(x, (left, self.receptive_field - self.hop_length - left))  # [B, T + rf - hop]
        inputs = {"input_values": x}
        if getattr(self.model.config, "feat_extract_norm", "group") == "layer":
            # only layer-norm extractors were trained with attention masks (HF's own advice)
            inputs["attention_mask"] = F.pad(valid.long(), (left, self.receptive_field - self.hop_length - left))
        return inputs

    @torch.no_grad()
    def features(self, wave: torch.Tensor, layer: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Output of encoder layer ``layer`` (0 = the encoder's input) for wave [B, T]: [B, T // hop, D]."""
        frames = wave.shape[-1] // self.hop_length
        if frames == 0:
            return wave.new_zeros(wave.shape[0], 0, self.dim)
        if lengths is None:
            lengths = torch.full((wave.shape[0],), wave.shape[-1], device=wave.device, dtype=torch.long)
        num_layers = len(self.model.encoder.layers)
        if not 0 <= layer <= num_layers:
            raise ValueError(f"layer must be in 0..{num_layers}, got {layer}")
        captured: list[torch.Tensor] = []
        hook = None
        if layer > 0:
            # A hook takes the raw block output: hidden_states[-1] would carry the final layer norm.
            hook = self.model.encoder.layers[layer - 1].register_forward_hook(
                lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out)
            )
        try:
            out = self.model(**self._inputs(wave, lengths), output_hidden_states=layer == 0)
        finally:
            if hook is not None:
                hook.remove()
        h = out.hidden_states[0] if layer == 0 else captured[-1]  # [B, F', D]
        if h.shape[1] < frames:  # fbank frontends can come up a frame short: repeat the edge
            h = torch.cat([h, h[:, -1:].expand(-1, frames - h.shape[1], -1)], dim=1)
        return h[:, :frames]
