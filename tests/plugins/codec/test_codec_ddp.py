"""Two CPU processes (gloo, ddp_spawn) train the GAN on different audio and end with identical weights."""
import lightning as L
import torch
from codec_synth import DumpStateOnTrainEnd, SynthAudioDataModule
from safetensors.torch import load_file

from soundstage.plugins.codec.presets import preset_config
from soundstage.plugins.codec.stage import SoundStreamStage


def test_ddp_gan_steps_keep_ranks_in_sync(tmp_path):
    torch.manual_seed(0)
    config = preset_config(
        "tiny", channels=4, decoder_channels=4, strides=[2, 4, 5], latent_dim=8, dilations=[1, 3],
        num_quantizers=3, codebook_size=32, stft_disc_ffts=[128], stft_disc_channels=4, wave_disc_scales=1,
        wave_disc_channels=4, disc_max_channels=16, mel_ffts=[64, 256], mel_bins=[16, 32],
        quantizer_dropout=1.0, dead_code_hits=0.01, balancer=True, waveform_weight=1.0, adversarial_start_step=0,
    )
    stage = SoundStreamStage(config)
    dm = SynthAudioDataModule(batch_size=4, num_samples=2000, n_train=12, seed_by_rank=True)  # ranks differ
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=6, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, callbacks=[DumpStateOnTrainEnd(str(tmp_path))],
    )
    initial = {k: v.clone() for k, v in stage.state_dict().items()}
    trainer.fit(stage, dm)
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between ranks"
    # training really happened: generator, discriminator and codebooks all moved
    for key in ("codec.encoder.net.0.conv.bias", "discriminators.wave.discriminators.0.out.bias",
                "codec.quantizer.levels.0.embed"):
        assert not torch.equal(rank0[key], initial[key]), key
    assert bool(rank0["codec.quantizer.levels.2.initialized"])
