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
# attn_probe NAME MODEL CONTEXT BATCHES CONFIGS...: attn_step_probe.py's cell (the committed GEMM table of
# MODEL, each JSON config laid over the plan) into $OUT/NAME.json, its result lines printed.
attn_probe() {
  local name=$1 model=$2 ctx=$3 batches=$4; shift 4
  local args=()
  for c in "$@"; do args+=(--config "$c"); done
  timeout 150 python3 benchmarks/attn_step_probe.py "$OUT/$name.json" --model "$model" --batches "$batches" \
    --context "$ctx" --table "$R/dispatch_${model}_H100.json" --gemm-table "${args[@]}" 2>&1 \
    | quiet | grep -v "capture compiles\|untuned\|_check_table" | grep "^batch\|Error\|error" | cut -c1-230
}
# env_ab_cells NAME MODEL TABLE CELLS SECONDS VAR VALUES: env_ab.py's decode tok/s of each VALUES (comma
# list) of the variable VAR, two rounds ABAB in one process, into $OUT/NAME.json, its round lines printed.
env_ab_cells() {
  timeout "$5" python3 benchmarks/env_ab.py "$OUT/$1.json" --model "$2" --table "$3" \
    --cells "$4" --env "$6" --values "$7" --rounds 2 2>&1 | quiet \
    | grep -v "capture compiles\|untuned\|_check_table" | grep "round\|Error\|error" | cut -c1-160
}
# gemm_only_8b: the committed 8B table without its decode_attention rows (the plan runs there), in /tmp.
gemm_only_8b() {
  python3 -c 'import json; t = json.load(open("benchmarks/results/dispatch_qwen3-8b_H100.json")); t["ops"].pop("decode_attention", None); json.dump(t, open("/tmp/dispatch_qwen3-8b_gemm.json", "w"))'
}
