#!/usr/bin/env bash
# Thirty-third session (2026-11-29), one H200: a new user's model whose heads the attention kernels cannot
# take (head_dim 80, 16 query heads over 4 KV heads, random weights), tuned and benched on the GPU: tune
# leaves decode_attention out and says so, the GEMM sites tune, export writes the table, bench runs it.
#   OUT=dir bash benchmarks/run_session33_hd80.sh
source benchmarks/_session.sh
cfg="$OUT/hd80.json"
python3 -c "import json, sys; json.dump({'architectures': ['Qwen3ForCausalLM'], 'model_type': 'qwen3', 'hidden_size': 1280,
  'intermediate_size': 3456, 'num_attention_heads': 16, 'num_key_value_heads': 4, 'head_dim': 80, 'num_hidden_layers': 8,
  'vocab_size': 32000, 'max_position_embeddings': 4096, 'rms_norm_eps': 1e-6, 'rope_theta': 1e6,
  'tie_word_embeddings': True}, open(sys.argv[1], 'w'))" "$cfg"
db="sqlite:///$(mktemp -d)/hd80.db"
start=$(date +%s)
COLUMNS=120 timeout 200 python3 -m cli.app tune --model "$cfg" --buckets 1,8 --trials 8 --bench-batches 1 --db "$db" \
  > "$OUT/hd80_tune.log" 2>&1
echo "tune rc=$? in $(( $(date +%s) - start )) s"; grep -v "━" "$OUT/hd80_tune.log" | grep -v "^\s*$" | head -3 | cut -c1-250
grep -v "━" "$OUT/hd80_tune.log" | tail -6 | cut -c1-250
python3 -m cli.app export --model "$cfg" --db "$db" -o "$OUT/hd80_table.json" 2>&1 | tail -2
COLUMNS=120 timeout 120 python3 -m cli.app bench --model "$cfg" --table "$OUT/hd80_table.json" --batch 1,8 --prompt-len 128 \
  --output-len 32 > "$OUT/hd80_bench.log" 2>&1
echo "bench rc=$?"; tail -8 "$OUT/hd80_bench.log" | cut -c1-200
