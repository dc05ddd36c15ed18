"""PTX of a dispatch table's fused decode_attention configs as an H100 launch builds them, in whatever
tree is on PYTHONPATH, on a machine without a GPU: the launcher runs on meta tensors with an H100's
device answers patched in (132 SMs, 50 MB L2, PDL) and Triton's driver answering for sm_90. Prints
{bucket: {kernel: sha256 of its PTX}}, without the debug sections, .file/.loc lines and debug labels
(they hold the tree's path). Two trees that print the same build the same code for the table.

    TRITON_CACHE_DIR=$(mktemp -d) PYTHONPATH=TREE python3 benchmarks/attention_ptx_identity.py TABLE.json [OPS]

OPS: a comma list of the table's ops (default decode_attention); the GEMM sites too (the twenty-ninth
session restamped every GEMM row after the ACCUMULATE variant this way).

Written in the nineteenth session, when decode_attention's module changed only on the meta device's
path (its kernel hash changed with it): the committed 8B table's two attention rows were restamped
after this printed the same for the tree before and after (results/session19_H100_2026-11-28/)."""

import hashlib
import json
import os
import pathlib
import re
import sys

import torch
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.runtime import driver

from kernel_space import _gemm, get_op
from kernel_space import decode_attention as da

STRIP = re.compile(r"^\s*(\.file|\.loc)\b.*$|\$L__tmp\d+:", re.M)


class H100Driver:
    launcher_cls = None

    def __init__(self):
        self.target = GPUTarget("cuda", 90, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0


def ptx_hash(path: pathlib.Path) -> str:
    text = path.read_text()
    debug = text.find(".section\t.debug")
    return hashlib.sha256(STRIP.sub("", text[:debug] if debug >= 0 else text).encode()).hexdigest()[:16]


def main() -> None:
    driver.set_active(H100Driver())
    _gemm.device_info = lambda device: (9, 132)
    _gemm.l2_bytes = lambda device: 50 << 20
    _gemm.pdl_enabled = lambda device: True
    da._sm_count = lambda device: 132
    _gemm._load = lambda compiled: None  # nothing to load into: no GPU
    table = json.loads(pathlib.Path(sys.argv[1]).read_text())
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else ["decode_attention"]
    root, out = pathlib.Path(os.environ["TRITON_CACHE_DIR"]), {}
    for name in names:
        op, spec = table["ops"][name], get_op(name)
        for bucket in op["buckets"]:
            if bucket["arm"] != "fused":
                continue
            cache = root / name / str(bucket["m"])  # a folder a bucket: its kernels apart from the others'
            knobs.cache.dir = str(cache)
            inputs = spec.make_inputs(bucket["m"], op["N"], op["K"], torch.bfloat16, "meta", None)
            with _gemm.compile_only():
                spec.fused(inputs, bucket["config"])
            key = f'{bucket["m"]} {json.dumps(bucket["config"], sort_keys=True)}'
            out[key if names == ["decode_attention"] else f"{name} {key}"] = {
                p.stem: ptx_hash(p) for p in sorted(cache.rglob("*.ptx"))}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
