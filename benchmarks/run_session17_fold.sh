#!/usr/bin/env bash
# Seventeenth session (2026-11-27), nvidia-h100-x1: the headroom a folded RMSNorm gain could have at
# 1.7B's and 8B's norm sites at M = 1 (fold_bound_probe.py).
#   OUT=dir bash benchmarks/run_session17_fold.sh
. benchmarks/_session.sh
timeout 90 python3 benchmarks/fold_bound_probe.py "$OUT/fold_bound.json" 2>&1 | quiet
