#!/usr/bin/env bash
# Thirty-fourth session, one H200: the whole test suite on the GPU again (8 pytest-xdist workers; plotly and
# narwhals carried this time, so the report's tests run too), to see the thirty-third session's fixes hold
# across the suite. Each failure is logged as it happens (benchmarks/_failure_log.py).
#   OUT=dir SECS=540 bash benchmarks/run_session34_gputests.sh
OUT=$OUT SECS=${SECS:-540} bash benchmarks/run_session32_gputests.sh -n 8 "$@"
