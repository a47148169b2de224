#!/usr/bin/env bash
# The GPU figures in one command that fits a lent GPU machine: one command of at most 10
# minutes, whose results come back from one folder (at most 8 files, 16 MiB each, 2 folders
# deep) plus the end of its output. From the repository root:
#
#   bash benchmarks/gpu_check.sh --out DIR [--budget-min 8] [--models a,b] [--more c,d] [--aoti] [--scratch S]
#   bash benchmarks/gpu_check.sh --dry-run --out DIR     # CPU, CI sizes: the same steps in a few minutes
#
# 1. Installs this checkout offline (python3 -m pip install --no-deps --no-build-isolation -e .;
#    skipped by --dry-run) and checks that sdk, sdk.train, sdk.export and sdk.benchmarks import
#    from it, that the `torch` backend (an entry point) loads, and that torch sees a CUDA GPU.
# 2. Measures --models (default spade-cityscapes,spade-ade20k: the targets' presets) with
#    benchmarks/latency.py at batch 1 and 8, FP16: reference-device, reference-host,
#    torch-compiled and torch-eager end to end and device-resident (+ aoti with --aoti),
#    and one FP16 parity figure per preset against FP32. Then --more presets, each only
#    while the time used plus the longest preset so far fits in --budget-min minutes.
#    Each preset runs in its own process (its own error boundary: a failure or a crash is
#    recorded and the next preset runs) and is stopped at --budget-min + 1 minute, so the
#    command ends within about --budget-min + 1.5 minutes (9.5 by default: a lent
#    machine's one command may run 10).
# 3. DIR gets results.json and results.md after every record, SUMMARY.md (the targets,
#    met or not) after every preset, and gpu_check.log (all output); SUMMARY.md is printed
#    at the end. Bundles and compile caches go to --scratch (default /tmp/sdk-gpu-check),
#    never into DIR; torch-only bundles (--no-onnx: the GPU runner needs only the weights).
set -uo pipefail  # no -e: each step says how it ended, and one bad preset does not end the run
cd "$(dirname "$0")/.." || exit 2

PY=${PYTHON:-python3}
OUT=""
MODELS=""
MORE=""
BUDGET_MIN=8
SCRATCH=${TMPDIR:-/tmp}/sdk-gpu-check
DRY_RUN=0
AOTI=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:-}; shift 2 || exit 2 ;;
    --models) MODELS=${2:-}; shift 2 || exit 2 ;;
    --more) MORE=${2:-}; shift 2 || exit 2 ;;
    --budget-min) BUDGET_MIN=${2:-}; shift 2 || exit 2 ;;
    --scratch) SCRATCH=${2:-}; shift 2 || exit 2 ;;
    --aoti) AOTI=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$OUT" ]; then
  echo "gpu_check.sh: --out DIR is required (on a lent GPU machine: --out \$OUT)" >&2; exit 2
fi
case "$BUDGET_MIN" in
  ''|*[!0-9]*) echo "gpu_check.sh: --budget-min takes whole minutes, got '$BUDGET_MIN'" >&2; exit 2 ;;
esac
mkdir -p "$OUT" "$SCRATCH" || exit 2
OUT=$(cd "$OUT" && pwd)
SCRATCH=$(cd "$SCRATCH" && pwd)
case "$SCRATCH/" in
  "$OUT"/*) echo "gpu_check.sh: --scratch must be outside --out (bundles would come back with the results)" >&2
            exit 2 ;;
esac
LOG=$OUT/gpu_check.log
: > "$LOG"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$SCRATCH/inductor}
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$SCRATCH/cache}

start=$(date +%s)
budget_s=$((BUDGET_MIN * 60))
deadline_s=$((budget_s + 60))  # the preset in flight is stopped here
elapsed() { echo $(( $(date +%s) - start )); }
say() { echo "[gpu_check] $*" | tee -a "$LOG"; }
logged() { "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }

if [ "$DRY_RUN" = 1 ]; then
  MODELS=${MODELS:-spade-demo-street}
  COMMON=(--device cpu --quick --batch 1,2 --precision fp32 --io host,device --parity fp16 --no-onnx
          --backends reference-device,reference-host,torch-compiled,torch-eager)
else
  MODELS=${MODELS:-spade-cityscapes,spade-ade20k}
  MORE=${MORE:-oasis-ade20k,groupdnet-deepfashion,dpsims-ade20k,pix2pixhd-cityscapes-2048,progan-celebahq-1024}
  BACKENDS=reference-device,reference-host,torch-compiled,torch-eager  # the targets' rows first
  [ "$AOTI" = 1 ] && BACKENDS=$BACKENDS,aoti
  COMMON=(--device cuda --batch 1,8 --precision fp16 --io host,device --parity fp16 --no-onnx
          --backends "$BACKENDS")
fi
NOTES=("gpu_check.sh$([ "$DRY_RUN" = 1 ] && echo ' --dry-run') --budget-min $BUDGET_MIN, started $(date -u +%Y-%m-%dT%H:%MZ)")

summary() {  # SUMMARY.md from results.json and the notes so far (printed with --print)
  local notes=() n
  for n in "${NOTES[@]}"; do notes+=(--note "$n"); done
  if [ "${1:-}" = --print ]; then
    "$PY" benchmarks/report.py --summary "$OUT" "${notes[@]}" 2>>"$LOG"
  else
    "$PY" benchmarks/report.py --summary "$OUT" "${notes[@]}" >/dev/null 2>>"$LOG"
  fi
}

fail_preflight() {  # nothing can be measured: say why in SUMMARY.md and end
  NOTES+=("preflight FAILED: $1 (nothing was measured; see gpu_check.log)")
  say "preflight failed: $1"
  { echo "# GPU check"; echo; printf '%s  \n' "${NOTES[@]}"; } > "$OUT/SUMMARY.md"
  cat "$OUT/SUMMARY.md"
  exit 1
}

# -- 1. install and check ----------------------------------------------------------------
if [ "$DRY_RUN" = 0 ]; then
  say "installing this checkout offline: $PY -m pip install --no-deps --no-build-isolation -e ."
  logged "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
    || fail_preflight "the offline install failed ($PY -m pip install --no-deps --no-build-isolation -e .)"
fi
say "checking imports, the torch backend and the device"
logged env GPU_CHECK_CUDA=$((1 - DRY_RUN)) "$PY" - <<'EOF' || fail_preflight "the import / backend / device check failed"
import importlib.metadata as md
import os
import sys
from pathlib import Path

import sdk
import sdk.benchmarks.latency
import sdk.export
import sdk.train
import torch
from sdk.backends import runner_class

root = Path.cwd().resolve()
where = Path(sdk.__file__).resolve()
if root not in where.parents:
    sys.exit(f"sdk imports from {where}, not from this checkout {root}: install it with "
             f"python3 -m pip install --no-deps --no-build-isolation -e .")
if not [ep for ep in md.entry_points(group="sdk.backends") if ep.name == "torch"]:
    sys.exit("the torch backend's entry point (sdk.backends: torch) is not installed")
runner_class("torch")  # imports sdk.train.deploy.runner through the entry point
if os.environ["GPU_CHECK_CUDA"] == "1" and not torch.cuda.is_available():
    sys.exit("torch sees no CUDA GPU here; use --dry-run on a CPU machine")
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (dry run)"
print(f"[gpu_check] ok: sdk {sdk.__version__} from {where.parent}, torch {torch.__version__} "
      f"(CUDA {torch.version.cuda}), {device}, python {sys.version.split()[0]}")
EOF
NOTES+=("preflight ok after $(elapsed) s: $(grep -o 'sdk [0-9.]* from.*' "$LOG" | tail -1)")

# -- 2. one process per preset ---------------------------------------------------------------
longest=0
run_preset() {  # $1: preset; records its outcome in NOTES
  local m=$1 t0 left rc took
  t0=$(date +%s)
  left=$((deadline_s - $(elapsed)))
  say "$m: starting after $(elapsed) s (stopped after ${left} s at the latest)"
  logged timeout --kill-after=15 "$left" "$PY" benchmarks/latency.py --models "$m" "${COMMON[@]}" \
    --out "$OUT" --append --bundles "$SCRATCH/bundles"
  rc=$?
  took=$(( $(date +%s) - t0 ))
  [ "$took" -gt "$longest" ] && longest=$took
  case $rc in
    0) NOTES+=("$m: done in $took s") ;;
    124|137) NOTES+=("$m: STOPPED at the deadline after $took s (results up to then kept)") ;;
    *) NOTES+=("$m: FAILED (exit $rc) after $took s; see gpu_check.log (results up to then kept)") ;;
  esac
  say "${NOTES[-1]}"
  summary
}

IFS=',' read -r -a required <<< "$MODELS"
IFS=',' read -r -a optional <<< "$MORE"
for m in "${required[@]}"; do
  if [ $(( deadline_s - $(elapsed) )) -lt 30 ]; then
    NOTES+=("$m: not started (the deadline had come)"); continue
  fi
  run_preset "$m"
done
for m in "${optional[@]}"; do
  if [ $(( $(elapsed) + longest )) -gt "$budget_s" ]; then
    NOTES+=("$m: not started (after $(elapsed) s the longest preset, $longest s, would not fit in ${BUDGET_MIN} min)")
    continue
  fi
  run_preset "$m"
done

# -- 3. what comes back ------------------------------------------------------------------------
rm -f "$OUT"/.*.tmp  # temp files of a write the deadline interrupted
NOTES+=("whole command: $(elapsed) s wall")
if [ "$(stat -c %s "$LOG")" -gt $((15 * 1024 * 1024)) ]; then  # keep the log under 16 MiB
  { head -c $((1024 * 1024)) "$LOG"; echo; echo "[... log cut to its first 1 and last 13 MiB ...]"
    tail -c $((13 * 1024 * 1024)) "$LOG"; } > "$SCRATCH/log.cut" && mv "$SCRATCH/log.cut" "$LOG"
fi
say "wrote $(cd "$OUT" && ls | tr '\n' ' ')in $OUT"
summary --print
