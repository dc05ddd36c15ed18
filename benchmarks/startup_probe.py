"""Where a worker's start-up seconds go before it can ask its first config: each step a worker's main
process takes (import torch, CUDA's first call, the GPU's properties, the kernels, the tuner), timed in
N processes started at once (one a GPU, as `tune --gpus N` starts its workers), beside one alone.

    python benchmarks/startup_probe.py --procs 1,4 [--rounds 2] > startup.json

(The fifth session's version, which timed each step in a fresh process of its own and wrote
results/startup_probe_H100_2026-11-26.json, is in the history of this file.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

STEPS = """
import time, json, os
t0 = time.perf_counter(); out = {}
def mark(name):
    global t0
    t = time.perf_counter(); out[name] = round(t - t0, 3); t0 = t
import sqlalchemy; mark("sqlalchemy")
import torch; mark("import torch")
torch.cuda.is_available(); mark("cuda.is_available")
torch.cuda.is_available() and torch.cuda.get_device_properties(0); mark("device properties")
import triton; mark("import triton")
import kernel_space.registry; mark("kernels")
import optuna; mark("optuna")
import tuner.distributed, tuner.search; mark("tuner")
from kernel_space.fingerprint import current_fingerprint; current_fingerprint(); mark("fingerprint")
print(json.dumps(out))
"""


def run(procs: int, env_extra: dict) -> list[dict]:
    children = []
    start = time.perf_counter()
    for i in range(procs):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(i), **env_extra)
        children.append(subprocess.Popen([sys.executable, "-c", STEPS], env=env, stdout=subprocess.PIPE, text=True))
    rows = []
    for c in children:
        out, _ = c.communicate()
        rows.append(json.loads(out.strip().splitlines()[-1]) if c.returncode == 0 else {"rc": c.returncode})
    return [{"procs": procs, "wall": round(time.perf_counter() - start, 2), **env_extra, "each": rows}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", default="1,4", help="Processes started at once, a case each (comma list).")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cases = []
    for _ in range(args.rounds):
        for n in (int(x) for x in args.procs.split(",")):
            for extra in ({}, {"PYTORCH_NVML_BASED_CUDA_CHECK": "1"}):
                cases += run(n, extra)
                print(json.dumps(cases[-1]), file=sys.stderr)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
