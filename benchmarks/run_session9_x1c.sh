#!/usr/bin/env bash
# Ninth session (2026-11-27), third nvidia-h100-x1 call. As run_session9_x1b.sh, after the GEMM's
# early weight load was limited to slices of one K block (ONE_BLOCK): the restamped committed tables
# on this tree's kernels against the committed tables on the previous commit's (BEFORE), ABAB; the
# registers at M=1; the restamped tables' logits against the unfused path (table_parity.py).
#   OUT=dir BEFORE=dir bash benchmarks/run_session9_x1c.sh
. benchmarks/_session.sh
HERE=$PWD
T6=$R/dispatch_qwen3-0.6b_H100.json; T8=$R/dispatch_qwen3-8b_H100.json
python3 benchmarks/restamp_table.py $T6 /tmp/restamped_qwen3-0.6b.json
python3 benchmarks/restamp_table.py $T8 /tmp/restamped_qwen3-8b.json
inside() { local tree=$1; shift; (cd "$tree" && PYTHONPATH=/tmp/site:$tree "$@"); }
echo "== registers, M=1, this tree"
timeout 120 python3 benchmarks/kernel_resources.py --table /tmp/restamped_qwen3-0.6b.json --m 1 --json $OUT/resources_after_1.json 2>&1 | quiet | cut -c1-150
bench() {  # tree table tag model batches
  echo "== $3"
  inside "$1" timeout 280 python3 -m cli.app bench --model $4 --batch $5 --context 256 --output-len 128 --table $2 \
    --repeats 5 --json $OUT/bench_$3.json 2>&1 | quiet | grep "│ *[0-9]" | cut -c1-150
}
bench "${BEFORE:?}" $T6 before_0.6b_1 qwen3-0.6b 1,8,32
bench "$HERE" /tmp/restamped_qwen3-0.6b.json after_0.6b_1 qwen3-0.6b 1,8,32
bench "$BEFORE" $T6 before_0.6b_2 qwen3-0.6b 1,8,32
bench "$HERE" /tmp/restamped_qwen3-0.6b.json after_0.6b_2 qwen3-0.6b 1,8,32
bench "$BEFORE" $T8 before_8b qwen3-8b 1,8
bench "$HERE" /tmp/restamped_qwen3-8b.json after_8b qwen3-8b 1,8
timeout 150 python3 benchmarks/table_parity.py --model qwen3-0.6b --table /tmp/restamped_qwen3-0.6b.json \
  --json $OUT/parity_0.6b.json 2>&1 | quiet | tail -4
