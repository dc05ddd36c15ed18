#!/usr/bin/env bash
# Thirty-second session (2026-11-29), one H200: the whole test suite on the GPU (4 pytest-xdist workers on
# the one GPU; tests that run kernels through the interpreter skip there, the GPU ones run). The call's
# time limit ends pytest before its summary, so each failure is logged as it happens
# (benchmarks/_failure_log.py) and the failures are counted by file and by error line. Needs pytest-xdist,
# execnet and pytest-timeout among the carried wheels (../shared/device/wheels.sh). The session's last call:
#   OUT=dir SECS=420 bash benchmarks/run_session32_gputests.sh --ignore=tests/dashboards -n 6
source benchmarks/_session.sh
export FAILURE_LOG="$OUT/failures.txt"
timeout "${SECS:-300}" python3 -m pytest -q -p no:cacheprovider -p no:benchmark -p benchmarks._failure_log -n 4 \
  --timeout 200 "$@" > "$OUT/gpu_tests_full.log" 2>&1
echo "pytest rc=$?"
tail -3 "$OUT/gpu_tests_full.log" | cut -c1-300
touch "$FAILURE_LOG"
grep -c "^===" "$FAILURE_LOG"
grep "^===" "$FAILURE_LOG" | sed 's/\[.*//' | cut -d: -f1 | sort | uniq -c
grep -E "Error|error|assert" "$FAILURE_LOG" | cut -c1-200 | sort | uniq -c | sort -rn | head -25
