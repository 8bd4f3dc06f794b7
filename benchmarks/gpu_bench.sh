#!/usr/bin/env bash
# The benchmarks of benchmarks/RESULTS.md on one CUDA GPU, as they are. UNTESTED ON A GPU (written
# on a CPU-only machine): every command below runs on CPU with --device cpu, and the CUDA paths
# are torch's own (torch.compile/inductor, autocast, GradScaler, cuda memory statistics).
#
#   bash benchmarks/gpu_bench.sh [OUT_DIR]        (default OUT_DIR: benchmarks/gpu-results)
#
# Writes one log per benchmark into OUT_DIR and a summary of the median_s= / epoch_s= lines to
# OUT_DIR/summary.txt. Needs the project installed (pip install -e .) with a CUDA build of torch.
# QUICK=1 runs fewer steps (a smoke run of a few minutes).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/gpu-results}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$PWD/$OUT/inductor-cache}"

if [[ "${QUICK:-0}" == 1 ]]; then STEPS=3; ROUNDS=2; RUNS=3; EPOCH_STEPS=(--steps 20); else STEPS=10; ROUNDS=3; RUNS=10; EPOCH_STEPS=(); fi

"$PY" - <<'EOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for the GPU machine"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
print("bf16 supported:", torch.cuda.is_bf16_supported())
EOF
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt" || true

run() {  # run NAME CMD...: log to OUT/NAME.log, echo the last line
  local name="$1"; shift
  echo "== $name: $*"
  "$@" 2>"$OUT/$name.stderr" | tee "$OUT/$name.log"
}

# 1. training step at the issue's settings (conv_dim 32, 128 px, batch 2)
run train_128_b2 "$PY" benchmarks/train_step.py --device cuda --conv-dim 32 --size 128 --batch 2 \
    --steps "$STEPS" --rounds "$ROUNDS" --variants eager,fast,fast+compile,fast+bf16,fast+compile+bf16,fast+fp16 --warm-cache

# 2. training step at the published settings (256 px, batch 10): time and peak memory
run train_256_b10 "$PY" benchmarks/train_step.py --device cuda --conv-dim 32 --size 256 --batch 10 \
    --steps "$STEPS" --rounds "$ROUNDS" --variants eager,fast,fast+compile,fast+bf16,fast+compile+bf16,fast+compile+channels_last+bf16

# 3. enhancement, 512 x 512 and a 12-megapixel-class 2048 x 3072 image (generator alone)
run enhance_512 "$PY" benchmarks/enhance.py --device cuda --size 512 --runs "$RUNS" --rounds "$ROUNDS" \
    --variants eager,compile,fast,fast+bf16,fast+fp16,fast+channels_last+fp16 --warm-cache
run enhance_512_b8 "$PY" benchmarks/enhance.py --device cuda --size 512 --batch 8 --runs "$RUNS" \
    --rounds "$ROUNDS" --variants eager,fast,fast+fp16

# 4. one FiveK epoch at the published settings (2250 images, batch 10: 225 steps), synthetic data
for variant in eager fast fast+compile+bf16; do
  run "epoch_${variant//+/_}" "$PY" benchmarks/epoch_time.py --device cuda --variant "$variant" \
      --size 256 --batch 10 --images 2250 "${EPOCH_STEPS[@]}"
done

# 5. can the data loader keep up? (batches/s per number of workers; one epoch needs 225 batches)
run loader "$PY" benchmarks/epoch_time.py --loader-only --size 256 --batch 10 --workers 0,4,8,12,16 \
    --loader-batches 40

{
  echo "# $(date -u +%FT%TZ) $(cat "$OUT/gpu.txt" 2>/dev/null | tail -1)"
  for log in "$OUT"/*.log; do
    printf '%s: %s\n' "$(basename "$log" .log)" "$(grep -E '^(median_s|epoch_s)=' "$log" | tail -1)"
  done
} | tee "$OUT/summary.txt"
