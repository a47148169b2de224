#!/usr/bin/env bash
# One command for the GPU figures: on a fresh CUDA machine with torch (and this checkout
# installed or on PYTHONPATH), export each preset and run benchmarks/latency.py at batch 1
# and 8 against the `reference` row (the official way: float one-hot on the GPU, FP16,
# channels-last, torch.compile reduce-overhead), writing one folder of results.
#
#   benchmarks/gpu_check.sh [--out DIR] [--models a,b,...] [--budget-min 25] [--aoti]
#   benchmarks/gpu_check.sh --dry-run     # CPU, CI sizes: the same steps in a few minutes
#
# Bundles are exported without ONNX graphs (--no-onnx: the GPU runner needs only the
# weights; onnxruntime here is CPU-only and TensorRT cannot be installed), so a full-size
# preset costs its compile, not a CPU ONNX export. Presets run in the order given and the
# run stops starting new ones once --budget-min minutes have passed (the rest are listed
# as not run in SUMMARY.md). AOTInductor packages are built only with --aoti (each is
# probed in a subprocess first: loading CUDA packages crashed on torch 2.11 + CUDA 13).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
OUT=""
MODELS=""
BUDGET_MIN=25
DRY_RUN=0
AOTI=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --budget-min) BUDGET_MIN=$2; shift 2 ;;
    --aoti) AOTI=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$DRY_RUN" = 1 ]; then
  MODELS=${MODELS:-spade-demo-street}
  OUT=${OUT:-runs/gpu_check_dry_run}
  COMMON=(--device cpu --quick --batch 1,2 --precision fp32
          --backends reference,torch-eager,torch-compiled,onnxruntime)
else
  MODELS=${MODELS:-spade-cityscapes,spade-ade20k,oasis-ade20k,groupdnet-deepfashion,dpsims-ade20k,pix2pixhd-cityscapes-2048,progan-celebahq-1024}
  OUT=${OUT:-benchmarks/results/gpu-$(date +%Y%m%d)}
  BACKENDS=reference,torch-compiled,torch-eager
  [ "$AOTI" = 1 ] && BACKENDS=$BACKENDS,aoti
  COMMON=(--device cuda --batch 1,8 --precision fp16 --backends "$BACKENDS" --no-onnx)
  "$PYTHON" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: torch sees no CUDA GPU here; use --dry-run on a CPU machine")
print(f"[gpu_check] {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
fi

mkdir -p "$OUT"
start=$(date +%s)
ran=()
skipped=()
IFS=',' read -r -a models <<< "$MODELS"
for m in "${models[@]}"; do
  elapsed=$(( ($(date +%s) - start) / 60 ))
  if [ "$elapsed" -ge "$BUDGET_MIN" ]; then
    echo "[gpu_check] $elapsed min used of $BUDGET_MIN: not starting $m"
    skipped+=("$m")
    continue
  fi
  echo "[gpu_check] $m (after $elapsed min)"
  "$PYTHON" benchmarks/latency.py --models "$m" "${COMMON[@]}" --out "$OUT/$m"
  ran+=("$m")
done

"$PYTHON" benchmarks/report.py --merge "$OUT" --out "$OUT" \
  --note "gpu_check.sh$([ "$DRY_RUN" = 1 ] && echo ' --dry-run'): $(( ($(date +%s) - start) / 60 )) min; ran: ${ran[*]:-none}; not run (budget): ${skipped[*]:-none}"
echo "[gpu_check] wrote $OUT/results.json, $OUT/results.md, $OUT/SUMMARY.md"
