# Sourced by the session scripts (run_session7_*.sh): the output folder, the date, the GPU's name, the
# results folder and a filter for the warnings that would crowd the device tool's output tail.
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
R=benchmarks/results
nvidia-smi -L
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax\|━\|^ *$"; }
# tables_ab SECONDS OUT.json NAME=TABLE ...: the 0.6B decode step with each table (and unfused) side by
# side in one process at batch 1, 8, 32 (benchmarks/tables_ab.py), cut at SECONDS.
tables_ab() {
  local secs=$1 out=$2; shift 2
  local args=()
  for arm in "$@"; do args+=(--table "$arm"); done
  timeout "$secs" python3 benchmarks/tables_ab.py --model qwen3-0.6b "${args[@]}" --batches 1,8,32 --out "$out" 2>&1 \
    | quiet | grep -v "capture compiles" | tail -20
}
