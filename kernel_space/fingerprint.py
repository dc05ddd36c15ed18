"""The GPU fingerprint: what makes a tuning result valid only for the machine that measured it."""

from __future__ import annotations

import torch
import triton

from kernel_space.registry import ALL_OPS, kernel_hash


def current_fingerprint(device: int | None = None) -> dict:
    """Device name, compute capability, SM count, memory, driver/CUDA/torch/triton versions and the
    hash of every op's kernel source (decode attention's included). Without a GPU it describes the
    Triton interpreter on the CPU."""
    hashes = _kernel_hashes()
    if torch.cuda.is_available():
        idx = torch.cuda.current_device() if device is None else device
        props = torch.cuda.get_device_properties(idx)
        return {
            "device_name": props.name,
            "capability": [props.major, props.minor],
            "sm_count": props.multi_processor_count,
            "total_memory": int(props.total_memory),
            "driver": _driver_version(),
            "cuda": torch.version.cuda or "",
            "torch": torch.__version__,
            "triton": triton.__version__,
            "kernel_hashes": hashes,
        }
    return interpreter_fingerprint(hashes)


def interpreter_fingerprint(hashes: dict | None = None) -> dict:
    """The fingerprint of Triton's interpreter on the CPU: what current_fingerprint gives in a process
    that sees no GPU (a worker started with TRITON_INTERPRET=1 beside one, its GPU hidden)."""
    return {
        "device_name": "cpu (triton interpreter)",
        "capability": [0, 0],
        "sm_count": 0,
        "total_memory": 0,
        "driver": "",
        "cuda": "",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "kernel_hashes": hashes if hashes is not None else _kernel_hashes(),
    }


def _kernel_hashes() -> dict:
    return {name: kernel_hash(name) for name in ALL_OPS}


def same_hardware(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("device_name", "capability", "sm_count", "total_memory"))


def _driver_version() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return ""
