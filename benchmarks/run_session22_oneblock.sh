#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: GEMM configs whose split is one K block (weights in
# registers before PDL's wait) where K = 3 x 2^n needs SPLIT_K 3, 6 or 12 (added to the space), against
# the committed configs, in the decode step at batch 1 (tables_ab.py: A B C C B A), tables made with
# table_variant.py.
#   OUT=dir bash benchmarks/run_session22_oneblock.sh
. benchmarks/_session.sh
V=$R/session22_H200_2026-11-28/variants
timeout 200 python3 benchmarks/tables_ab.py --model qwen3-0.6b --table committed=$R/dispatch_qwen3-0.6b_H100.json \
  --table down_bk1024_s3=$V/0.6b_down_bk1024_s3.json --table down_bk512_s6=$V/0.6b_down_bk512_s6.json \
  --batches 1 --out "$OUT/oneblock_0.6b.json" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -12
timeout 200 python3 benchmarks/tables_ab.py --model qwen3-1.7b --table committed=$R/dispatch_qwen3-1.7b_H100.json \
  --table down_bk1024_s6=$V/1.7b_down_bk1024_s6.json --table one_block=$V/1.7b_one_block.json \
  --batches 1 --out "$OUT/oneblock_1.7b.json" 2>&1 | quiet | grep -v "capture compiles\|untuned\|_check_table" | tail -12
