"""The soundstream stage: token API, portable checkpoint, a real (tiny) GAN fit, and overfitting one clip."""
import math
import time

import lightning as L
import pytest
import torch
from codec_synth import SynthAudioDataModule, micro_config, synth_clip
from lightning.pytorch.loggers import TensorBoardLogger

from soundstage.plugins.codec.presets import PRESETS, preset_config
from soundstage.plugins.codec.stage import SoundStreamStage
from soundstage.registry import get_stage
from soundstage.stage import Stage


def generator_updates(stage, batch, steps, opt, log_key, sched=None) -> list[float]:
    """Reconstruction-only updates of ``stage`` on one fixed batch; the logged ``log_key`` after each."""
    values = []
    for _ in range(steps):
        total, logs = stage.step_objective(batch, adversarial=False, discriminators=False)
        opt.zero_grad()
        total.backward()
        opt.step()
        if sched is not None:
            sched.step()
        values.append(float(logs[log_key]))
    return values


def test_registered_and_presets_build():
    assert get_stage("soundstream") is SoundStreamStage
    assert SoundStreamStage.consumes == ("audio", "semantic") and SoundStreamStage.produces == ("acoustic",)
    assert SoundStreamStage.optional_consumes == ("semantic",)  # only semantic distillation reads it
    paper = preset_config("paper")
    assert (paper.sample_rate, paper.strides, paper.num_quantizers, paper.codebook_size) == (16000, [2, 4, 5, 8], 12, 1024)
    assert set(PRESETS) == {"tiny", "small", "paper"}


def test_encode_decode_api_shapes_and_lengths():
    stage = SoundStreamStage(micro_config()).eval()
    assert (stage.hop_length, stage.frame_rate, stage.num_quantizers, stage.codebook_size) == (40, 400.0, 3, 32)
    for t in (40 * 9, 40 * 9 + 13):
        wave = torch.randn(2, t)
        codes = stage.encode(wave)
        assert codes.shape == (2, 3, math.ceil(t / 40)) and codes.dtype == torch.int64
        assert codes.min() >= 0 and codes.max() < 32
        assert stage.decode(codes).shape == (2, codes.shape[-1] * 40)
        assert stage.decode(codes, length=t).shape == (2, t)
        assert stage.encode(wave, num_quantizers=1).shape == (2, 1, codes.shape[-1])
        assert torch.equal(stage.encode(wave, num_quantizers=2), codes[:, :2])  # levels are a prefix
        assert stage.encode(wave[0]).shape == (3, codes.shape[-1])  # unbatched [T] -> [Q, T']
        assert stage.decode(codes[0], length=t).shape == (t,)
    with pytest.raises(ValueError, match="num_quantizers"):
        stage.encode(torch.randn(1, 400), num_quantizers=4)


def test_streaming_encode_decode_equals_offline():
    torch.manual_seed(0)
    stage = SoundStreamStage(micro_config()).eval()
    wave = torch.randn(1, 40 * 20)
    codes = stage.encode(wave)
    with stage.streaming():
        streamed = torch.cat([stage.encode(wave[:, a:b]) for a, b in [(0, 120), (120, 400), (400, 800)]], -1)
    assert torch.equal(streamed, codes)
    with stage.streaming():
        audio = torch.cat([stage.decode(codes[..., a:b]) for a, b in [(0, 7), (7, 8), (8, 20)]], -1)
    torch.testing.assert_close(audio, stage.decode(codes), atol=1e-5, rtol=1e-5)


def test_save_and_load_pretrained_decode_identically(tmp_path):
    torch.manual_seed(0)
    stage = SoundStreamStage(micro_config())
    stage.train()
    stage.codec(torch.randn(4, 400))  # k-means init + an EMA step, so the buffers differ from a fresh model
    stage.eval()
    path = stage.save_pretrained(tmp_path / "model.safetensors")
    loaded = Stage.load_pretrained(path)
    assert isinstance(loaded, SoundStreamStage) and loaded.config == stage.config
    wave = torch.randn(2, 1000)
    codes = stage.encode(wave)
    assert torch.equal(loaded.encode(wave), codes)
    assert torch.equal(loaded.decode(codes), stage.decode(codes))


def test_tiny_gan_fit_logs_metrics_audio_and_images(tmp_path):
    torch.manual_seed(0)
    stage = SoundStreamStage(micro_config(accumulate_grad_batches=2, disc_warmup_steps=1, balancer=True))
    dm = SynthAudioDataModule(batch_size=4, num_samples=2000, n_train=16, n_val=2)
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = L.Trainer(accelerator="cpu", max_steps=8, logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                        limit_val_batches=1)
    before = {k: v.clone() for k, v in stage.state_dict().items()}
    trainer.fit(stage, dm)
    metrics = trainer.callback_metrics
    for key in ("train/mel", "train/adv", "train/feat", "train/d_loss", "train/vq_perplexity/0",
                "val/si_snr", "val/mel_distance", "val/stft_distance", "val/bitrate_kbps"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    assert metrics["val/bitrate_kbps"] == pytest.approx(3 * 5 * 400 / 1000)
    after = stage.state_dict()
    assert not torch.equal(before["codec.decoder.net.0.conv.bias"], after["codec.decoder.net.0.conv.bias"])
    assert not torch.equal(before["discriminators.stft.discriminators.0.out.bias"],
                           after["discriminators.stft.discriminators.0.out.bias"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logger.log_dir), size_guidance={"audio": 0, "images": 0}).Reload()
    assert {"val_audio/0_input", "val_audio/0_reconstruction"} <= set(events.Tags()["audio"])
    assert "val_mel/0_input_over_reconstruction" in events.Tags()["images"]


def test_reconstruction_only_phase_leaves_discriminators_untouched():
    """Before ``adversarial_start_step`` only the generator trains (D neither runs nor steps); global_step
    still counts 2 per generator update, so ``max_steps`` keeps its meaning."""
    torch.manual_seed(0)
    stage = SoundStreamStage(micro_config(adversarial_start_step=3, lr_warmup_steps=2))
    dm = SynthAudioDataModule(batch_size=4, num_samples=2000, n_train=16, n_val=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    before = {k: v.clone() for k, v in stage.state_dict().items()}
    trainer.fit(stage, dm)
    after = stage.state_dict()
    assert trainer.global_step == 6
    assert not torch.equal(before["codec.decoder.net.0.conv.bias"], after["codec.decoder.net.0.conv.bias"])
    for k in before:
        if k.startswith("discriminators."):
            assert torch.equal(before[k], after[k]), k
    assert "train/adv" not in trainer.callback_metrics and float(trainer.callback_metrics["train/d_loss"]) == 0.0
    g_opt = trainer.optimizers[0]
    assert g_opt.param_groups[0]["lr"] == pytest.approx(stage.config.lr)  # warm-up over after 2 updates
    stage = SoundStreamStage(micro_config(adversarial_start_step=2))  # the 3rd update trains D
    before = stage.state_dict()["discriminators.stft.discriminators.0.out.bias"].clone()
    trainer = L.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(stage, dm)
    assert not torch.equal(before, stage.state_dict()["discriminators.stft.discriminators.0.out.bias"])


def test_tiny_codec_overfits_one_clip():
    """Generator-only training on one 0.5 s clip: the multi-scale mel loss falls at least 3x in 150 updates."""
    torch.manual_seed(0)
    stage = SoundStreamStage(preset_config("tiny", quantizer_dropout=0.0, codebook_size=64))
    clip = synth_clip(0, 8000).unsqueeze(0)  # [1, T]
    opt = torch.optim.Adam(stage.codec.parameters(), lr=3e-3)
    losses = generator_updates(stage, clip, 150, opt, "train/mel")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"overfit: mel loss {first:.3f} -> {last:.3f}")
    assert last < first / 3, (first, last)


def test_predict_step_gives_per_clip_codes():
    stage = SoundStreamStage(micro_config()).eval()
    batch = {"audio": torch.randn(2, 800), "lengths": torch.tensor([800, 333]), "key": ["a", "b"]}
    out = stage.predict_step(batch, 0)
    assert out["key"] == ["a", "b"]
    assert [c.shape for c in out["codes"]] == [(3, 20), (3, 9)]


def test_build_datamodule_checks_sample_rate_and_uses_whole_frames(tmp_path):
    from soundstage.data.audio_datamodule import AudioDataModule
    from soundstage.recipe_schema import DataConfig
    from soundstage.stage import StageContext
    from soundstage.trainer import TrainerConfig

    stage = SoundStreamStage(micro_config(segment_seconds=0.251))
    ctx = StageContext("codec", tmp_path, tmp_path, DataConfig(sample_rate=24000), TrainerConfig(),
                       train_shards="train-{000000..000001}.tar", val_shards="val-000000.tar")
    with pytest.raises(ValueError, match="sample_rate"):
        stage.build_datamodule(ctx)
    ctx.data = DataConfig(sample_rate=16000)
    dm = stage.build_datamodule(ctx)
    assert isinstance(dm, AudioDataModule)
    assert dm.segment_samples == 4000 and dm.segment_samples % stage.hop_length == 0


def test_codebooks_stay_in_use_during_early_training():
    """Regression: with default (non-zero) conv biases the latents started as a drifting blob narrower than
    its per-update drift, and within a few updates every frame of a batch mapped to 1-2 codes per level, for good
    (perplexity 1-5 through 30 updates). With zero biases the codebook dips while the first fast updates move the
    latents away from the k-means codes, until dead-code restarts (after 8 x 256 unused vectors, ~10 updates here)
    bring it back above 100."""
    torch.manual_seed(0)
    stage = SoundStreamStage(preset_config("tiny", lr_warmup_steps=5))
    (g_opt, _), (sched, _) = stage.configure_optimizers()
    batch = torch.stack([synth_clip(seed, 8000) for seed in range(8)])  # 8 x 25 frames per step
    perplexity = generator_updates(stage, batch, 20, g_opt, "train/vq_perplexity/0", sched)
    assert min(perplexity[-5:]) > 20, perplexity


def test_waveform_loss_alone_trains_the_generator():
    """``waveform_weight`` wires an L1 between waveforms into the generator's gradient (here the only term)."""
    torch.manual_seed(0)
    stage = SoundStreamStage(micro_config(mel_weight=0.0, waveform_weight=1.0, quantizer_dropout=0.0))
    clip = synth_clip(1, 4000).unsqueeze(0)
    opt = torch.optim.Adam(stage.codec.parameters(), lr=3e-3)
    losses = generator_updates(stage, clip, 40, opt, "train/wave")
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5]), losses
    assert "train/wave" not in SoundStreamStage(micro_config(waveform_weight=0.0)).step_objective(clip, False, False)[1]
