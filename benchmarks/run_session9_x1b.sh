#!/usr/bin/env bash
# Ninth session (2026-11-27), second nvidia-h100-x1 call. The GEMM now loads the first block of its
# weight slice into registers before PDL's wait. The same configs (the committed tables, restamped
# with this tree's kernel hashes: restamp_table.py) on this tree's kernels against the committed
# tables on the previous commit's kernels (BEFORE, a copy carried beside this tree), ABAB, in
# `bench`; registers and programs per SM of the M=1 kernels in both; then the op tests in bf16.
#   OUT=dir BEFORE=dir bash benchmarks/run_session9_x1b.sh
. benchmarks/_session.sh
HERE=$PWD
T6=$R/dispatch_qwen3-0.6b_H100.json; T8=$R/dispatch_qwen3-8b_H100.json
python3 benchmarks/restamp_table.py $T6 $OUT/restamped_qwen3-0.6b.json
python3 benchmarks/restamp_table.py $T8 $OUT/restamped_qwen3-8b.json
inside() { local tree=$1; shift; (cd "$tree" && PYTHONPATH=/tmp/site:$tree "$@"); }
for m in 1 8; do
  echo "== registers, M=$m: before / after"
  inside "${BEFORE:?}" timeout 120 python3 benchmarks/kernel_resources.py --table $T6 --m $m --json $OUT/resources_before_$m.json 2>&1 | quiet | cut -c1-150
  inside "$HERE" timeout 120 python3 benchmarks/kernel_resources.py --table $OUT/restamped_qwen3-0.6b.json --m $m --json $OUT/resources_after_$m.json 2>&1 | quiet | cut -c1-150
done
bench() {  # tree table tag model batches
  echo "== $3"
  inside "$1" timeout 280 python3 -m cli.app bench --model $4 --batch $5 --context 256 --output-len 128 --table $2 \
    --repeats 5 --json $OUT/bench_$3.json 2>&1 | quiet | grep -v "^ *─\|^ *batch" | tail -5 | cut -c1-150
}
bench "$BEFORE" $T6 before_0.6b_1 qwen3-0.6b 1,8,32
bench "$HERE" $OUT/restamped_qwen3-0.6b.json after_0.6b_1 qwen3-0.6b 1,8,32
bench "$BEFORE" $T6 before_0.6b_2 qwen3-0.6b 1,8,32
bench "$HERE" $OUT/restamped_qwen3-0.6b.json after_0.6b_2 qwen3-0.6b 1,8,32
bench "$BEFORE" $T8 before_8b qwen3-8b 1,8
bench "$HERE" $OUT/restamped_qwen3-8b.json after_8b qwen3-8b 1,8
timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=short -x tests/kernel_space/test_ops.py -k "bfloat16 or bf16" \
  > "$OUT/test_ops_gpu.log" 2>&1
tail -2 "$OUT/test_ops_gpu.log"
