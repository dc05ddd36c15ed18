"""ptx_only(): for the ahead-of-time compile scripts (aot_*.py), Triton's CUDA backend stopping at PTX, in
a Triton cache of its own. The scripts read PTX, TTGIR and the compile's metadata, all made before ptxas,
which is a third of each compile's time. The empty binaries it leaves in place of the cubins must never
be found by a real launch: the cache is a temporary folder, removed at the end."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def ptx_only():
    """Compiles under it stop at PTX (an empty binary for ptxas' cubin), cached in a folder of their own
    (Triton reads TRITON_CACHE_DIR at each compile)."""
    from triton.backends.nvidia.compiler import CUDABackend

    add_stages, cache = CUDABackend.add_stages, os.environ.get("TRITON_CACHE_DIR")

    def without_ptxas(self, stages, options, *args, **kwargs):
        add_stages(self, stages, options, *args, **kwargs)
        stages["cubin"] = lambda src, metadata: b""

    folder = tempfile.mkdtemp(prefix="ks-ptx-only-")
    CUDABackend.add_stages = without_ptxas
    os.environ["TRITON_CACHE_DIR"] = folder
    try:
        yield
    finally:
        CUDABackend.add_stages = add_stages
        if cache is None:
            os.environ.pop("TRITON_CACHE_DIR", None)
        else:
            os.environ["TRITON_CACHE_DIR"] = cache
        shutil.rmtree(folder, ignore_errors=True)
