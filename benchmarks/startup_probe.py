"""Where a process's start-up goes on this machine (each step in a fresh process, seconds):
python alone, import torch, CUDA's check (cuInit, or NVML with PYTORCH_NVML_BASED_CUDA_CHECK=1),
device properties, the worker's imports, and the whole `kernel-search worker --help`.

    python3 benchmarks/startup_probe.py > startup_probe.json
"""

import json
import os
import subprocess
import sys
import time

STEPS = {
    "python": "pass",
    "import torch": "import torch",
    "torch + cuda.is_available (cuInit)": "import torch; torch.cuda.is_available()",
    "torch + cuda.is_available (NVML)": "import os; os.environ['PYTORCH_NVML_BASED_CUDA_CHECK']='1'; import torch; "
                                        "torch.cuda.is_available(); torch.cuda.device_count()",
    "torch + device properties": "import torch; torch.cuda.get_device_properties(0)",
    "torch + a CUDA tensor": "import torch; torch.ones(1, device='cuda')",
    "worker imports": "import cli.app, kernel_space, tuner.distributed, tuner.search, optuna, sqlalchemy",
    "worker imports + CUDA tensor": "import cli.app, kernel_space, tuner.distributed; import torch; "
                                    "torch.ones(1, device='cuda')",
}


def timed(code: str, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    out = {}
    for name, code in STEPS.items():
        out[name] = [timed(code) for _ in range(3)]
    four = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    out["torch + CUDA tensor, 4 at once"] = []
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", STEPS["torch + a CUDA tensor"]], env=four) for _ in range(4)]
    for p in procs:
        p.wait()
    out["torch + CUDA tensor, 4 at once"].append(round(time.perf_counter() - t0, 2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
