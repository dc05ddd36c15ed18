"""Every process keys a kernel alike in Triton's cache, whatever it hashed first (kernel_space.jit_keys).
Without it, Triton 3.6 keyed fused_linear_kernel apart in a process that hashed rmsnorm_prepass_kernel
first, and a tune's benchmarking child compiled again what its compile pool had built."""

import subprocess
import sys

from tests.conftest import child_env

# Prints the cache key of every JIT function of the kernel modules, touching them in the order the
# argument says, in a process that has launched nothing (compiled Triton, not the interpreter).
KEYS = r"""
import importlib, sys
from triton.runtime.jit import JITCallable
first = [importlib.import_module("kernel_space." + name) for name in sys.argv[2].split(",")]
from kernel_space import registry  # noqa: F401 (the ops, decode attention's keys settled)
modules = [importlib.import_module("kernel_space." + name) for name in
           ("_gemm", "decode_attention", "qk_norm_rope_cache", "combine_o_proj", "fixed_point", "prefill")]
fns = [(m.__name__ + "." + n, v) for m in modules for n, v in sorted(vars(m).items())
       if isinstance(v, JITCallable) and v.__module__ == m.__name__]
order = {"forward": fns, "reverse": fns[::-1],
         "prepass first": sorted(fns, key=lambda f: not f[0].endswith("rmsnorm_prepass_kernel"))}[sys.argv[1]]
keys = {name: fn.cache_key for name, fn in order}
print(len(keys), sorted(keys.items()))
"""


def _keys(order: str, imports: str = "_gemm") -> str:
    done = subprocess.run([sys.executable, "-c", KEYS, order, imports], capture_output=True, text=True, timeout=240,
                          env=child_env("TRITON_INTERPRET"))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_cache_keys_do_not_depend_on_what_was_hashed_first():
    forward = _keys("forward")
    assert int(forward.split()[0]) >= 40  # the kernels and their helpers were all seen
    assert _keys("reverse") == forward
    assert _keys("prepass first", imports="fixed_point,combine_o_proj") == forward


def test_settle_leaves_alone_what_is_not_a_jit_function():
    from kernel_space import jit_keys

    namespace = {"__name__": "somewhere", "x": 1, "f": len}
    jit_keys.settle(namespace)
    assert namespace == {"__name__": "somewhere", "x": 1, "f": len}

