#!/usr/bin/env bash
# Twenty-eighth session, third call (one H200): the norm ops' inline prologue on tensor-core tiles with
# a K loop (its activation ring one buffer short) against rescan and prepass, with both split-K
# reductions, errors against the fp64 reference in every run (splitk_race_probe.py --rings).
. benchmarks/_session.sh
timeout 500 python3 -m benchmarks.splitk_race_probe --out "$OUT/rings.json" --rings --repeats 6 2>&1 | quiet | tail -40
