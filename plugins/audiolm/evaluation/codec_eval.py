"""Codec figures: SI-SNR and mel distance of reconstructions of held-out utterances."""
from __future__ import annotations

from typing import Any

import torch

from soundstage.data.utterances import Utterance
from soundstage.plugins.codec.metrics import MelDistance, ScaleInvariantSignalNoiseRatio, bitrate

from .run_dir import module_device


@torch.no_grad()
def codec_metrics(codec: Any, utterances: list[Utterance], max_seconds: float = 10.0) -> dict[str, float]:
    """Encode + decode each utterance (first ``max_seconds``) with all RVQ levels; mean SI-SNR (dB) and mel distance."""
    device = module_device(codec)
    si_snr = ScaleInvariantSignalNoiseRatio().to(device)
    mel = MelDistance(codec.sample_rate).to(device)
    seconds = 0.0
    for utt in utterances:
        wave = torch.from_numpy(utt.wave[: int(max_seconds * codec.sample_rate)]).to(device)[None]  # [1, T]
        recon = codec.decode(codec.encode(wave))[:, : wave.shape[1]]  # the decoder may pad to whole frames
        wave = wave[:, : recon.shape[1]]
        si_snr.update(recon, wave)
        mel.update(recon, wave)
        seconds += wave.shape[1] / codec.sample_rate
    if not utterances:
        return {"utterances": 0}
    return {
        "si_snr_db": float(si_snr.compute()),
        "mel_distance": float(mel.compute()),
        "utterances": len(utterances),
        "seconds": round(seconds, 3),
        "bitrate_bps": bitrate(codec.num_quantizers, codec.codebook_size, codec.frame_rate),
    }
