#!/usr/bin/env bash
# The GPU paths in one short run on one CUDA device, each result a file under OUT_DIR:
#   lm_bf16.json                        LM training MFU against the card's bf16 matmul rate (flash SDPA), eager
#   lm_paper_compile.json               the paper-size LM compiled: MFU, peak memory, largest batch; sampling
#                                       at batch 1/8/64, eager vs static cache + compiled step (benchmarks/lm.py)
#   codec_fp32.json, codec_bf16.json    codec training throughput, discriminator share, RTF (benchmarks/codec.py)
#   pipeline.log                        speech_tiny end to end with bf16-mixed under the DDP strategy
#   quality/                            the small codec through its GAN phase (benchmarks/codec_quality.py),
#                                       with TensorBoard events holding validation metrics before and after it
# The pipeline and the quality run share the GPU (they start after the timed benchmarks).
#
#   benchmarks/gpu_suite.sh OUT_DIR [QUALITY_MINUTES=3] [REAL_AUDIO_DIR]
set -u
out=$(realpath -m "${1:-runs/gpu_suite}"); minutes=${2:-3}; real=${3:-}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
$py -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$out/gpu.txt" 2>&1

timeout 70 $py lm.py --device cuda --dtype bf16 --repeats 3 > "$out/lm_bf16.json" 2> "$out/lm.err"
# the paper-size LM (12 x 1024, the coarse stage's 2304 tokens), compiled: MFU, memory, the largest batch,
# and sampling at batch 1 / 8 / 64, eager vs static KV cache + compiled step (CUDA graphs)
timeout 200 $py lm.py --device cuda --dtype bf16 --compile --repeats 3 --d-model 1024 --layers 12 --heads 16 \
  --seq 2304 --batch 8 --find-max-batch --decode-batches 1,8,64 --decode-tokens 256 > "$out/lm_paper_compile.json" 2>> "$out/lm.err"
for p in fp32 bf16; do
  timeout 50 $py codec.py --device cuda --precision $p --presets small paper --repeats 5 > "$out/codec_$p.json" 2>> "$out/codec.err"
done

timeout 260 $py -m soundstage.cli run speech_tiny --run-dir /tmp/gpu_suite_pipeline trainer.accelerator=gpu \
  trainer.precision=bf16-mixed trainer.strategy=ddp trainer.devices=1 > "$out/pipeline.log" 2>&1 &
pipeline=$!
audio=(); [ -n "$real" ] && audio=(--real-audio "$real"/*.wav)
timeout $(( ${minutes%.*} * 60 + 90 )) $py codec_quality.py --preset small --accelerator gpu --workers 6 \
  --minutes "$minutes" --hours 0.3 --out "$out/quality" \
  --set adversarial_start_step=1000 disc_warmup_steps=100 batches_per_epoch=250 "${audio[@]}" > "$out/quality.log" 2>&1
wait $pipeline; echo "pipeline exit $?" >> "$out/pipeline.log"
