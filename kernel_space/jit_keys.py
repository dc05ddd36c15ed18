"""Triton JIT cache keys that do not depend on what a process launched first.

Triton 3.6 keys a compiled kernel on its JIT function's `cache_key`: a hash of its source, of the keys
of the JIT functions it calls, and of the `tl.constexpr` globals it and they read. It merges a callee's
globals into the caller's before it computes the callee's key, so a callee hashed for the first time
inside its caller's hash contributes no globals. The key then depends on the order in which a process
first hashed its kernels: in the thirty-fifth session's tunes, a compile process whose first job was a
pre-pass config (rmsnorm_prepass_kernel first, then fused_linear_kernel) keyed both kernels apart
from a process that hashed fused_linear_kernel first, and the benchmarking child then compiled again
(0.2-1.5 s each) a quarter of the configs the pool had built for it (upstream fixed this after 3.6:
Triton's pull request 10494, "Make JIT dependency cache keys deterministic").

settle() fixes the keys of a module's JIT functions when the module is imported, before anything can
launch: it recomputes them until none changes, so that every function's globals include all of its
callees' (the callees from modules imported before it are settled already). Every process then keys
every kernel the same way, whatever it launches first.
"""

from __future__ import annotations


def settle(namespace: dict) -> None:
    """Recompute the cache keys of the JIT functions defined in `namespace` (a module's globals) until
    they stop changing. A Triton without the attributes this relies on is left as it is."""
    from triton.runtime import jit

    kind = getattr(jit, "JITCallable", None) or getattr(jit, "JITFunction", None)  # 3.6's name, or older ones'
    if kind is None:
        return
    module = namespace.get("__name__")
    functions = [value for value in namespace.values()
                 if isinstance(value, kind) and getattr(value, "__module__", None) == module]
    if not all(hasattr(fn, "hash") and hasattr(fn, "used_global_vals") for fn in functions):
        return
    # Each round adds at least one level of callees' globals to their callers: the call depth bounds it.
    for _ in range(len(functions) + 1):
        before = [fn.cache_key for fn in functions]
        for fn in functions:
            fn.hash = None  # its used_global_vals stay: the callers' next hash merges them
        if [fn.cache_key for fn in functions] == before:
            return
    raise RuntimeError(f"the Triton cache keys of {module} did not settle")
