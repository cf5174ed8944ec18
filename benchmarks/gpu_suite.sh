#!/usr/bin/env bash
# The GPU figures in one unattended run on one CUDA device, each result a file under OUT_DIR:
#   lm_paper_train.json     the paper-size LM (12 x 1024, the coarse stage's 2304 tokens), bf16 autocast,
#                           flash SDPA, fused AdamW, torch.compile'd: MFU against the card's bf16 matmul rate
#   lm_paper_memory.json    the same LM eager: peak memory per batch and the largest batch that fits
#   lm_paper_decode.json    its sampling at batch 1 / 8 / 64, eager vs static KV cache + compiled step
#                           (CUDA graphs); batch 1 against the weight-streaming bound (benchmarks/lm.py)
#   generation_*.json       audio seconds per wall second, paper-size SoundStorm (fp32, bf16) and AR coarse + fine
#   fsdp_resume.txt         the paper-size LM under FSDP: trains, checkpoints, SIGTERM, resumes (fsdp_resume.sh)
#   codec_fp32.json, codec_bf16.json    codec training throughput and RTF (benchmarks/codec.py)
#   pipeline.log            speech_tiny end to end with bf16-mixed under the DDP strategy
#   quality/                the small codec through its GAN phase (benchmarks/codec_quality.py)
# Each section has its own timeout, so one that hangs costs only its slot. The default SECTIONS take at
# most 8 minutes; memory and fsdp (measured 2026-11-28) and codec, pipeline and quality (2026-11-26)
# are there to repeat when their code changes.
#
#   benchmarks/gpu_suite.sh OUT_DIR [FSDP_BASE_RUN_DIR] [QUALITY_MINUTES=3] [REAL_AUDIO_DIR]
#   SECTIONS="lm decode generation" (default; add memory fsdp codec pipeline quality for the rest)
# FSDP_BASE_RUN_DIR: a speech_tiny run dir with codec, semantic and tokens done (fsdp_resume.sh).
# A machine with torch and Lightning but no network: benchmarks/gpu_wheels.sh builds the rest as wheels.
set -u
out=$(realpath -m "${1:-runs/gpu_suite}"); base=${2:+$(realpath "$2")}; minutes=${3:-3}; real=${4:-}
sections=" ${SECTIONS:-lm decode generation} "
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")"
mkdir -p "$out"
want() { [[ "$sections" == *" $1 "* ]]; }
stamp() { echo "$(date +%T) $1" >> "$out/times.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
$py -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$out/gpu.txt" 2>&1
paper=(--device cuda --dtype bf16 --d-model 1024 --layers 12 --heads 16 --seq 2304)

stamp start
want lm && timeout 130 $py lm.py "${paper[@]}" --compile --batch 16 --repeats 3 --decode-tokens 32 \
  > "$out/lm_paper_train.json" 2> "$out/lm.err"; stamp lm
want memory && timeout 70 $py lm.py "${paper[@]}" --batch 8 --repeats 1 --decode-tokens 32 --find-max-batch \
  > "$out/lm_paper_memory.json" 2>> "$out/lm.err"; stamp memory
# 120 tokens after a 1-token prompt: attention spans 64 and 128, so 2 compiled graphs per batch size
want decode && timeout 200 $py lm.py "${paper[@]}" --batch 1 --repeats 1 --decode-batches 1,8,64 --decode-tokens 120 \
  > "$out/lm_paper_decode.json" 2>> "$out/lm.err"; stamp decode
if want generation; then
  timeout 50 $py generation.py --size paper --device cuda --generators soundstorm --what codes waveform \
    --seconds 3 10 30 --batch 1 8 > "$out/generation_soundstorm.json" 2> "$out/generation.err"
  timeout 40 $py generation.py --size paper --device cuda --dtype bf16 --generators soundstorm --what codes waveform \
    --seconds 30 --batch 1 8 > "$out/generation_soundstorm_bf16.json" 2>> "$out/generation.err"
  timeout 50 $py generation.py --size paper --device cuda --generators coarse_fine --what codes \
    --seconds 10 --batch 1 > "$out/generation_ar.json" 2>> "$out/generation.err"
  stamp generation
fi
want fsdp && [ -n "$base" ] && timeout 170 ./fsdp_resume.sh "$base" "$out" > /dev/null 2>&1; want fsdp && stamp fsdp
if want codec; then
  for p in fp32 bf16; do
    timeout 50 $py codec.py --device cuda --precision $p --presets small paper --repeats 5 > "$out/codec_$p.json" 2>> "$out/codec.err"
  done
  stamp codec
fi
want pipeline && { timeout 260 $py -m soundstage.cli run speech_tiny --run-dir /tmp/gpu_suite_pipeline trainer.accelerator=gpu \
  trainer.precision=bf16-mixed trainer.strategy=ddp trainer.devices=1 > "$out/pipeline.log" 2>&1 & }
if want quality; then
  audio=(); [ -n "$real" ] && audio=(--real-audio "$real"/*.wav)
  timeout $(( ${minutes%.*} * 60 + 90 )) $py codec_quality.py --preset small --accelerator gpu --workers 6 \
    --minutes "$minutes" --hours 0.3 --out "$out/quality" \
    --set adversarial_start_step=1000 disc_warmup_steps=100 batches_per_epoch=250 "${audio[@]}" > "$out/quality.log" 2>&1
fi
want pipeline && { wait; echo "pipeline exit $?" >> "$out/pipeline.log"; }
stamp end
