"""Imported by the fork server before it forks (tuner.worker.PRELOAD, outside Triton's interpreter):
builds and loads Triton's CUDA driver helper, a C module that a process's first kernel load compiles
with the host's C compiler into Triton's cache, once for every process the server forks. Before, the
~40 processes of four workers on one host, started at once on a fresh cache, each built it. Nothing
here initializes CUDA, which a forked process could not use then."""

from tuner import trace

trace.event("fork server imported")
try:
    from triton.backends.nvidia.driver import CudaUtils

    CudaUtils()
except Exception:  # no CUDA library here: each process says so itself when it needs the GPU
    pass
