#!/usr/bin/env bash
# Twenty-eighth session, second call (one H200): what the last-program mismatch needs. The first call
# (run_session28_race.sh) found the stored partials wrong with PDL on and right with it off; here PDL stays
# on and one thing changes at a time (splitk_race_halves.py --variant).
. benchmarks/_session.sh
timeout 300 python3 -m benchmarks.splitk_race_halves --out "$OUT/halves_variants.json" --repeats 4 --cases 3 \
  --variant none,noprefetch,nolaunchpdl,sync 2>&1 | quiet | grep -v "where:" | tail -20
