"""A probe for the first-study cost of a tune (benchmarks/run_session8_x1.sh), loaded by every Python
process whose PYTHONPATH starts with this folder, and active only when KS_PROBE_LOG names a file.

It appends one JSON line per event to that file: every C module Triton builds with the host compiler
(`build`: launchers and its driver helper, with seconds) and every kernel a process loads (`load`:
seconds in CompiledKernel._init_handles, launcher build included), with the process id and time.
KS_PROBE_OFF=1 turns off what this tree does against that cost (the compile pool building launchers,
Triton's driver started early), so one run can compare both.
"""

import json
import os
import time

_LOG = os.environ.get("KS_PROBE_LOG")


def _log(**event):
    with open(_LOG, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "t": round(time.time(), 3), **event}) + "\n")


if _LOG:
    import triton.compiler.compiler as _compiler
    import triton.runtime.build as _build_mod

    _real_build = _build_mod._build

    def _timed_build(name, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return _real_build(name, *args, **kwargs)
        finally:
            _log(what="build", name=name, s=round(time.perf_counter() - t0, 3))

    _build_mod._build = _timed_build
    _real_init = _compiler.CompiledKernel._init_handles

    def _timed_init(self):
        if self.module is not None:
            return _real_init(self)
        t0 = time.perf_counter()
        try:
            return _real_init(self)
        finally:
            _log(what="load", name=self.name, s=round(time.perf_counter() - t0, 3))

    _compiler.CompiledKernel._init_handles = _timed_init
    try:  # imported in both modes, so that both pay the same for it
        import kernel_space._gemm as _gemm
        import tuner.compile as _tc
    except ImportError:  # a process outside the repository
        _gemm = _tc = None
    if os.environ.get("KS_PROBE_OFF") == "1" and _gemm is not None:
        _gemm._load = lambda compiled: None
        _tc.triton_driver_ready = lambda: None
