"""The ``soundstream`` stage: trains the SoundStream codec on audio shards and turns audio into acoustic tokens.

One training step (manual optimization, two optimizers):
  1. the generator reconstructs the batch once: ``y = G(x)``;
  2. ``y`` is cut from the generator's graph as a leaf ``y_d``; the discriminators run once on
     ``cat([x, y_d])``, and every generator loss (reconstruction, adversarial, feature matching) is
     computed on ``y_d``; their gradient w.r.t. ``y_d`` (weighted, or balanced as in EnCodec) is taken
     with ``autograd.grad``, which touches no discriminator weight gradients;
  3. a single backward of ``d_loss + <y, dL/dy> + commitment`` fills the discriminator gradients
     (from ``d_loss``) and the generator gradients (through ``y``) at once, so DDP reduces every
     parameter exactly once per step and needs no ``find_unused_parameters``.
Before ``adversarial_start_step`` generator updates, step 2 is skipped: the discriminators do not run
and the generator learns from the mel/spectral losses alone (the discriminators are most of a CPU step).
With ``semantic_weight`` > 0 the first RVQ level's vectors also predict the upstream semantic
tokenizer's ids through a linear head (semantic distillation, SpeechTokenizer / Mimi); the
cross-entropy joins the generator's objective (outside the balancer, like the commitment loss: it is
no function of the reconstruction) and reaches the encoder through the straight-through estimator. Both optimizers then step every ``accumulate_grad_batches`` batches, after clipping. Lightning counts
each ``optimizer.step()``: ``trainer.global_step`` (and ``max_steps``) is 2 per generator update.
"""
from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor

from soundstage.errors import SoundstageError
from soundstage.plugins.roles import CodecStage
from soundstage.plugins.teacher_ids import TeacherIds
from soundstage.lr_schedule import warmup_anneal
from soundstage.optim import adamw
from soundstage.stage import StageContext

from .config import SoundStreamConfig
from .spec import SoundStreamSpec
from .discriminators import Discriminators
from .losses import LossBalancer, MultiScaleSpectralLoss, feature_matching_loss, hinge_d_loss, hinge_g_loss
from .metrics import MelDistance, ScaleInvariantSignalNoiseRatio, STFTDistance, bitrate
from .model import streaming
from .generator import build_generator
from .viz import mel_image


class SoundStreamStage(SoundStreamSpec, CodecStage):
    """SoundStream codec: audio <-> acoustic tokens [B, Q, T'] (declarations: ``spec.py``)."""

    config: SoundStreamConfig

    def __init__(self, config: SoundStreamConfig) -> None:
        super().__init__(config)
        c = config
        self.automatic_optimization = False
        self.codec = build_generator(c)
        self.discriminators = Discriminators(
            list(c.stft_disc_ffts), c.stft_disc_channels, c.wave_disc_scales, c.wave_disc_channels, c.disc_max_channels
        )
        self.spectral_loss = MultiScaleSpectralLoss(c.sample_rate, list(c.mel_ffts), list(c.mel_bins))
        self.weights = {"mel": c.mel_weight, "stft": c.stft_weight, "wave": c.waveform_weight,
                        "adv": c.adversarial_weight, "feat": c.feature_weight}
        self.balancer = LossBalancer(self.weights) if c.balancer else None
        if c.compile:  # in place: parameter names (and checkpoints) stay the same
            for module in (self.codec.encoder, self.codec.decoder, self.discriminators):
                module.compile()
        # semantic distillation: level-0 vectors -> semantic ids (trained with the generator, used only in training)
        self.semantic_head = torch.nn.Conv1d(c.latent_dim, c.semantic_vocab_size, 1) if c.semantic_weight > 0 else None
        self._semantic: list[TeacherIds] = []  # the semantic tokenizer, outside the module tree: never saved
        self.val_si_snr = ScaleInvariantSignalNoiseRatio()
        self.val_mel = MelDistance(c.sample_rate)
        self.val_stft = STFTDistance(c.sample_rate)
        self._val_clips: list[tuple[Tensor, Tensor]] = []

    # --- token API (sample_rate, frame_rate, hop_length, num_quantizers, codebook_size: CodecStage) ------
    def num_frames(self, num_samples: int) -> int:
        """Code frames for a clip of ``num_samples`` samples."""
        return math.ceil(num_samples / self.hop_length)

    @torch.no_grad()
    def encode(self, wave: Tensor, num_quantizers: int | None = None) -> Tensor:
        """Waveform [B, T] (or [T]) -> int64 codes [B, Q, ceil(T / hop)] with the first ``num_quantizers`` levels."""
        squeeze = wave.dim() == 1
        codes = self.codec.encode(wave.view(1, -1) if squeeze else wave, num_quantizers)
        return codes[0] if squeeze else codes

    @torch.no_grad()
    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """int64 codes [B, Q, T'] (or [Q, T']) -> waveform [B, T' * hop], cut to ``length`` samples if given."""
        squeeze = codes.dim() == 2
        wave = self.codec.decode(codes.unsqueeze(0) if squeeze else codes)
        wave = wave if length is None else wave[..., :length]
        return wave[0] if squeeze else wave

    def streaming(self):
        """Context manager: inside it, ``encode``/``decode`` are stateful and take consecutive chunks
        (audio chunks must be whole multiples of ``hop_length``); needs ``causal=True`` and ``seanet``."""
        if self.config.architecture != "seanet":
            raise ValueError(f"streaming needs the causal seanet codec, not architecture {self.config.architecture!r}")
        return streaming(self.codec)

    # --- pipeline hooks ---------------------------------------------------------------------------
    def build_datamodule(self, ctx: StageContext) -> L.LightningDataModule:
        from soundstage.data.audio_datamodule import AudioDataModule

        c = self.config
        if ctx.data.sample_rate != c.sample_rate:
            raise ValueError(
                f"stage {ctx.name!r}: codec sample_rate {c.sample_rate} differs from data.sample_rate "
                f"{ctx.data.sample_rate} (set it to ${{data.sample_rate}} in the recipe)"
            )
        if ctx.train_shards is None:
            raise ValueError(f"stage {ctx.name!r}: no training audio shards")
        return AudioDataModule(
            train_shards=ctx.train_shards, val_shards=ctx.val_shards, sample_rate=c.sample_rate,
            batch_size=c.batch_size, segment_samples=self._whole_frames(c.segment_seconds),
            num_workers=ctx.data.num_workers, batches_per_epoch=c.batches_per_epoch,
            shuffle_buffer=ctx.data.shuffle_buffer, seed=ctx.seed,
            val_segment_samples=self._whole_frames(c.val_segment_seconds),
            pin_memory=ctx.data.pin_memory, prefetch_factor=ctx.data.prefetch_factor, hop_length=self.hop_length,
            augment=c.augment,
        )

    def prepare(self, ctx: StageContext) -> None:
        """With semantic distillation, load the upstream semantic tokenizer whose ids level 0 learns to predict."""
        c = self.config
        if c.semantic_weight <= 0:
            return
        teacher = ctx.load_upstream("semantic")
        if int(teacher.vocab_size) != c.semantic_vocab_size:
            raise SoundstageError(f"stage {ctx.name!r}: config.semantic_vocab_size={c.semantic_vocab_size} but the "
                                  f"semantic tokenizer has {teacher.vocab_size} ids")
        self.set_semantic_teacher(teacher)

    def set_semantic_teacher(self, teacher: Any) -> None:
        """Distil ``teacher.encode(wave) -> ids`` (a semantic tokenizer) into the first RVQ level."""
        self._semantic = [TeacherIds(teacher, self.frame_rate, self.sample_rate, "codec")]

    def semantic_loss(self, x: Tensor, first_level: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(cross-entropy, accuracy) of the head's prediction of the semantic ids from level-0 vectors [B, D, T']."""
        if not self._semantic:
            raise SoundstageError("codec: semantic_weight > 0 but no semantic tokenizer (prepare(ctx) or set_semantic_teacher)")
        ids = self._semantic[0](x, lengths, first_level.shape[-1])  # [B, T'], -1: no id
        logits = self.semantic_head(first_level.float())  # [B, V, T']
        loss = torch.nn.functional.cross_entropy(logits, ids, ignore_index=-1)
        known = ids >= 0
        acc = (logits.argmax(1) == ids)[known].float().mean()
        return loss, acc

    def after_fit(self, ctx: StageContext) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "frame_rate": self.frame_rate, "hop_length": self.hop_length,
                "num_quantizers": self.num_quantizers, "codebook_size": self.codebook_size}

    def _whole_frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.sample_rate / self.hop_length)) * self.hop_length

    # --- training ---------------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.config
        params = list(self.codec.parameters())
        if self.semantic_head is not None:
            params += list(self.semantic_head.parameters())
        g_opt = adamw(params, lr=c.lr, betas=tuple(c.betas))
        d_opt = adamw(self.discriminators.parameters(), lr=c.disc_lr, betas=tuple(c.betas))
        # per generator update (both schedulers step once per update); the anneal follows the trainer's budget
        factor = warmup_anneal(self._trainer, c.lr_warmup_steps, c.min_lr_ratio, c.lr_anneal_fraction, c.lr_decay)
        g_sched = torch.optim.lr_scheduler.LambdaLR(g_opt, factor)
        d_sched = torch.optim.lr_scheduler.LambdaLR(d_opt, factor)
        return [g_opt, d_opt], [g_sched, d_sched]

    def reconstruction_losses(self, y: Tensor, x: Tensor) -> dict[str, Tensor]:
        """Spectral terms (``mel``, ``stft``) and, if weighted, the waveform L1 (``wave``) of reconstruction ``y``."""
        losses = self.spectral_loss(y, x)
        if self.weights["wave"] > 0:
            losses["wave"] = torch.nn.functional.l1_loss(y, x)
        return losses

    def gan_losses(self, x: Tensor, y: Tensor, adversarial: bool) -> tuple[dict[str, Tensor], Tensor]:
        """Generator terms on reconstruction ``y`` and the discriminator loss, from one D pass on real + fake."""
        losses = self.reconstruction_losses(y, x)
        logits, feats = self.discriminators(torch.cat([x, y], dim=0))
        b = x.shape[0]
        real_logits, fake_logits = [lg[:b] for lg in logits], [lg[b:] for lg in logits]
        d_loss = hinge_d_loss(real_logits, fake_logits)
        if adversarial:
            losses["adv"] = hinge_g_loss(fake_logits)
            real_feats = [[f[:b] for f in fs] for fs in feats]
            losses["feat"] = feature_matching_loss(real_feats, [[f[b:] for f in fs] for fs in feats])
        return losses, d_loss

    def step_objective(self, x: Tensor, adversarial: bool = True, discriminators: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar whose backward gives this step's generator and discriminator gradients, plus logs.

        ``discriminators=False`` (the reconstruction-only phase before ``adversarial_start_step``, and
        benchmarks) leaves the discriminators out entirely.
        """
        c = self.config
        out = self.codec(x)  # the one generator pass of this step
        # leaf, in fp32 also under bf16-mixed: D and every G loss hang off it
        y = out.audio.detach().float().requires_grad_(True)
        x = x.float()
        if discriminators:
            losses, d_loss = self.gan_losses(x, y, adversarial)
        else:
            losses, d_loss = self.reconstruction_losses(y, x), x.new_zeros(())
        if self.balancer is not None:
            grad_y, _ = self.balancer.gradient(losses, y)
        else:
            weighted = sum(self.weights[k] * v for k, v in losses.items() if self.weights[k] > 0)
            grad_y = torch.autograd.grad(weighted, y, retain_graph=discriminators)[0]
        # <y, dL/dy> has gradient dL/dy w.r.t. y: the generator backward starts from the shared reconstruction
        total = (out.audio * grad_y).sum() + c.commitment_weight * out.commitment_loss + d_loss
        logs = {f"train/{k}": v.detach() for k, v in losses.items()}
        if self.semantic_head is not None:
            semantic, accuracy = self.semantic_loss(x, out.first_level)
            total = total + c.semantic_weight * semantic
            logs["train/semantic_ce"], logs["train/semantic_acc"] = semantic.detach(), accuracy
        logs["train/d_loss"] = d_loss.detach()
        logs["train/commitment"] = out.commitment_loss.detach()
        logs.update({f"train/vq_{k}": v for k, v in out.stats.items()})
        return total, logs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        c = self.config
        g_opt, d_opt = self.optimizers()
        x = batch["audio"]  # [B, T]
        accum = max(1, c.accumulate_grad_batches)
        if batch_idx % accum == 0:
            g_opt.zero_grad(set_to_none=True)
            d_opt.zero_grad(set_to_none=True)
        update = self.global_step // 2  # generator updates so far (global_step counts both optimizers)
        gan = update >= c.adversarial_start_step
        adversarial = update >= c.adversarial_start_step + c.disc_warmup_steps
        total, logs = self.step_objective(x, adversarial, discriminators=gan)
        if not gan:
            # D did not run; a zero-valued touch of its weights gives them (zero) gradients, so DDP's
            # reducer still sees every parameter used and needs no find_unused_parameters
            total = total + 0.0 * sum(p.view(-1)[0] for p in self.discriminators.parameters())
        self.manual_backward(total / accum)
        if (batch_idx + 1) % accum == 0:
            if not gan:
                d_opt.zero_grad(set_to_none=True)  # AdamW then skips D: no update, no weight decay
            for opt, clip in ((g_opt, c.gen_grad_clip), (d_opt, c.disc_grad_clip)):
                if clip is not None and (gan or opt is g_opt):
                    self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
                opt.step()  # D's step is a no-op before the GAN phase, but keeps global_step = 2 per update
            for sched in self.lr_schedulers():
                sched.step()
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=x.shape[0])
        self.log("train/loss_mel", logs["train/mel"], prog_bar=True, on_step=True, batch_size=x.shape[0])

    # --- validation -------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x = batch["audio"]  # [B, T]
        lengths = batch.get("lengths")
        out = self.codec(x)
        y = out.audio
        if self.semantic_head is not None and self._semantic:  # how well level 0 tells what is said
            _, accuracy = self.semantic_loss(x, out.first_level, lengths)
            self.log("val/semantic_acc", accuracy, batch_size=x.shape[0], sync_dist=True)
        for i in range(x.shape[0]):  # per clip, so padding never enters a metric
            n = int(lengths[i]) if lengths is not None else x.shape[1]
            xi, yi = x[i : i + 1, :n], y[i : i + 1, :n]
            self.val_si_snr.update(yi, xi)
            self.val_mel.update(yi, xi)
            self.val_stft.update(yi, xi)
            if batch_idx == 0 and len(self._val_clips) < self.config.log_audio_clips:
                self._val_clips.append((xi[0].detach().cpu(), yi[0].detach().cpu()))
        bsz = x.shape[0]
        self.log("val/si_snr", self.val_si_snr, batch_size=bsz, prog_bar=True)
        self.log("val/mel_distance", self.val_mel, batch_size=bsz)
        self.log("val/stft_distance", self.val_stft, batch_size=bsz)

    def on_validation_epoch_end(self) -> None:
        kbps = bitrate(self.num_quantizers, self.codebook_size, self.frame_rate) / 1000
        self.log("val/bitrate_kbps", kbps)
        clips, self._val_clips = self._val_clips, []
        writer = getattr(self.logger, "experiment", None) if self.logger is not None else None
        if not clips or self.trainer.sanity_checking or self.global_rank != 0 or not hasattr(writer, "add_audio"):
            return  # audio and pictures only go to a TensorBoard SummaryWriter
        step = self.global_step // 2
        for i, (xi, yi) in enumerate(clips):
            peak = max(float(xi.abs().max()), float(yi.abs().max()), 1e-6)
            writer.add_audio(f"val_audio/{i}_input", (xi / max(peak, 1.0)).unsqueeze(0), step, self.sample_rate)
            writer.add_audio(f"val_audio/{i}_reconstruction", (yi / max(peak, 1.0)).unsqueeze(0), step, self.sample_rate)
            writer.add_image(f"val_mel/{i}_input_over_reconstruction", mel_image([xi, yi], self.sample_rate), step,
                             dataformats="HWC")

    # --- tokenization (Lightning predict loop) -------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Codes of each clip of an audio batch, cut to the clip's own length: {"key", "codes": [int64 [Q, T_i]]}."""
        x = batch["audio"]
        lengths = batch.get("lengths")
        codes = self.encode(x)  # [B, Q, T']
        n = [self.num_frames(int(l)) for l in lengths] if lengths is not None else [codes.shape[-1]] * len(x)
        return {"key": batch.get("key"), "codes": [codes[i, :, : n[i]].cpu() for i in range(len(x))]}
