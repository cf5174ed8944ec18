#!/usr/bin/env bash
# FSDP: the paper-size LM (12 x 1024 by default) trains as speech_tiny's semantic LM, checkpoints, is
# killed with SIGTERM (a preemption), and resumes from its checkpoint to the end, through `soundstage run`.
#
#   benchmarks/fsdp_resume.sh BASE_RUN_DIR OUT_DIR
#
# BASE_RUN_DIR holds speech_tiny's finished codec, semantic and tokens stages; it is copied, not changed.
# Environment (defaults: the GPU proof): STRATEGY=fsdp ACCELERATOR=gpu PRECISION=bf16-mixed
# MODEL="d_model=1024 n_layer=12 n_head=16" STEPS=1000 EVERY=200 (checkpoint interval). On a CPU the same
# script checks itself with STRATEGY=auto ACCELERATOR=cpu PRECISION=32-true and a small MODEL.
# Writes OUT_DIR/fsdp_first.log, fsdp_second.log and fsdp_resume.txt (exit codes, steps, verdict).
set -u
base=$(realpath "$1"); out=$(realpath -m "$2"); mkdir -p "$out"
py=${PYTHON:-python3}
strategy=${STRATEGY:-fsdp}; accelerator=${ACCELERATOR:-gpu}; precision=${PRECISION:-bf16-mixed}
model=${MODEL:-"d_model=1024 n_layer=12 n_head=16"}; steps=${STEPS:-1000}; every=${EVERY:-200}
run=$(mktemp -d)/run; cp -r "$base" "$run"
s=stages.semantic_lm
overrides=("$s.trainer.strategy=$strategy" "$s.trainer.accelerator=$accelerator" "$s.trainer.devices=1"
           "$s.trainer.precision=$precision" "$s.trainer.max_steps=$steps" "$s.trainer.checkpoint_every_n_steps=$every")
for kv in $model; do overrides+=("$s.config.model.$kv"); done
report="$out/fsdp_resume.txt"
echo "strategy=$strategy accelerator=$accelerator precision=$precision model=($model) steps=$steps every=$every" > "$report"

$py -m soundstage.cli run speech_tiny --run-dir "$run" --stages semantic_lm "${overrides[@]}" > "$out/fsdp_first.log" 2>&1 &
pid=$!
ckpt="$run/semantic_lm/checkpoints/last.ckpt"
until [ -f "$ckpt" ] || ! kill -0 $pid 2>/dev/null; do sleep 0.5; done

kill -TERM $pid 2>/dev/null
wait $pid; echo "first run exit $? (143: stopped by SIGTERM after saving)" >> "$report"
grep -a -o "SIGTERM: saved .* at step [0-9]*" "$out/fsdp_first.log" | head -1 >> "$report"
[ -f "$ckpt" ] && echo "checkpoint after the first run: $(du -h "$ckpt" | cut -f1)" >> "$report"

$py -m soundstage.cli run speech_tiny --run-dir "$run" --stages semantic_lm "${overrides[@]}" > "$out/fsdp_second.log" 2>&1
echo "second run exit $?" >> "$report"
grep -a -o "resuming from [^ ]*" "$out/fsdp_second.log" | head -1 >> "$report"
# the step each run reached, from the checkpoints Lightning wrote (full state dict: weights_only loads it)
$py - "$run/semantic_lm" >> "$report" 2>&1 <<'EOF'
import json, sys
from pathlib import Path
import torch
stage = Path(sys.argv[1])
done = stage / "done.json"
ckpt = torch.load(stage / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True, mmap=True)
print(f"final checkpoint: global_step {ckpt['global_step']}, done.json {'written' if done.is_file() else 'MISSING'}")
EOF
grep -q "resuming from" "$report" && grep -q "second run exit 0" "$report" && echo "verdict: resumed and finished" >> "$report" \
  || echo "verdict: FAILED (see the logs)" >> "$report"
cat "$report"
