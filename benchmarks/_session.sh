# Sourced by the session scripts (run_session7_*.sh): the output folder, the date, the GPU's name, the
# results folder and a filter for the warnings that would crowd the device tool's output tail.
set -u
OUT=${OUT:-benchmarks/results/new}
mkdir -p "$OUT"
day=$(date +%F)
R=benchmarks/results
nvidia-smi -L
quiet() { grep -v "Warning\|_mismatch\|warnings.warn\|softmax\|━\|^ *$"; }
