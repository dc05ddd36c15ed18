"""The registry of ops: every op's spec by name, their shapes and kernel hashes.

OPS are the linear fusion sites the model calls through the dispatcher at M tokens (one weight each);
ATTENTION_OPS holds decode attention, which the same tuner tunes into the same table, keyed by batch
and context (kernel_space.attention_shape). ALL_OPS is both: what a tune covers by default, what a
table may hold and what the GPU fingerprint hashes."""

from __future__ import annotations

import ast
import hashlib
import inspect
import io
import re
import sys
import textwrap
import tokenize

from kernel_space import (
    decode_attention,
    down_residual,
    jit_keys,
    lm_head,
    o_proj_residual,
    rmsnorm_gate_up_silu,
    rmsnorm_qkv,
)
from kernel_space.spec import ModelDims, OpSpec

# The other kernel modules settle their Triton cache keys at their end; decode_attention's is settled
# here, because its module's text is part of its op's kernel hash (kernel_hash), which a committed
# table's rows carry.
jit_keys.settle(vars(decode_attention))

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (rmsnorm_qkv.SPEC, o_proj_residual.SPEC, rmsnorm_gate_up_silu.SPEC, down_residual.SPEC, lm_head.SPEC)
}
ATTENTION_OPS: dict[str, OpSpec] = {decode_attention.SPEC.name: decode_attention.SPEC}
ALL_OPS: dict[str, OpSpec] = {**OPS, **ATTENTION_OPS}


def get_op(name: str) -> OpSpec:
    """The spec of op `name` (a linear site or decode attention); a ValueError lists the known ops."""
    spec = OPS.get(name) or ATTENTION_OPS.get(name)
    if spec is None:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(ALL_OPS)}")
    return spec


def op_shapes(dims: ModelDims) -> dict[str, tuple[int, int]]:
    """(N, K) of every linear site's weight for a model."""
    return {name: spec.shape(dims) for name, spec in OPS.items()}


def kernel_hash(name: str) -> str:
    """sha256 over the code of the Triton kernels an op runs, and over what the op computes around
    them (its launcher's variant, its default plan): a table tuned on other code is stale. The code
    is the source without its comments and docstrings (code_text), so a change of wording alone
    keeps every table current."""
    spec = get_op(name)
    digest = hashlib.sha256()
    # The op's own module: its launcher decides which variant of the shared kernel runs.
    digest.update(code_text(inspect.getsource(sys.modules[spec.make_inputs.__module__])).encode())
    for fn in spec.kernel_sources:
        digest.update(code_text(kernel_source(fn)).encode())
    digest.update(name.encode())
    return digest.hexdigest()[:16]


def kernel_source(fn) -> str:
    """A kernel's source as triton.jit keeps it (JITFunction.src: dedented, from its `def` on, without
    the decorators), taken from the Python function itself: under TRITON_INTERPRET=1 the decorator
    returns an InterpretedFunction, which has no `src`, and the hash must be the same there (a CPU
    process checks tables tuned on a GPU, and a GPU machine's tests start interpreter workers). Any
    other callable: its source as it is."""
    if not hasattr(fn, "fn"):
        return inspect.getsource(fn)
    raw = fn
    while hasattr(raw, "fn"):  # a JIT or interpreted function (or a wrapper of one): the Python function
        raw = raw.fn
    src = textwrap.dedent(inspect.getsource(raw))
    start = re.search(r"^def\s+\w+\s*\(", src, re.MULTILINE)
    return src[start.start():] if start else src


def code_text(source: str) -> str:
    """Python source without its comments, docstrings, trailing blanks and empty lines: what kernel_hash
    hashes. Comments are found by tokenize and docstrings by ast (a string statement first in a module,
    class or function body, on lines of its own), both of which see the same positions on every Python
    version this runs on; a docstring that shares a line with code stays."""
    lines = source.split("\n")  # as tokenize numbers rows (splitlines also breaks at form feeds and the like)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not body:
            continue
        first = body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            continue
        start, end = first.lineno - 1, first.end_lineno - 1
        before = lines[start].encode()[:first.col_offset].decode()
        after = lines[end].encode()[first.end_col_offset:].decode()
        if before.strip() or after.strip():
            continue
        for row in range(start, end + 1):
            lines[row] = ""
    return "\n".join(line.rstrip() for line in lines if line.strip())
