"""The runtime dispatcher: interval lookup, fallbacks (with their warnings), refused tables, and that
the fused path it picks computes what the baseline does."""

import json
import warnings

import pytest
import torch

import kernel_space as ks
import qwen3.dispatch as dispatch
from qwen3.dispatch import Dispatcher
from storage.table import TableError, load_table
from tests.conftest import DEVICE, requires_interpreter
from tests.qwen3.helpers import DOT, FMA_M1, table_dict

SHAPES = {"rmsnorm_qkv": (48, 40), "o_proj_residual": (40, 64), "rmsnorm_gate_up_silu": (112, 40),
          "down_residual": (40, 56), "lm_head": (96, 40)}
BUCKETS = [(1, "fused", FMA_M1), (4, "unfused", ks.UNFUSED_CONFIG), (16, "fused", DOT)]


def quiet(table, **kw) -> Dispatcher:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a table for this machine and this code loads without a warning
        return Dispatcher(table, **kw)


def test_no_table_runs_the_baseline_everywhere():
    ops = Dispatcher()
    assert ops.resolve("rmsnorm_qkv", 1) == ("unfused", {"impl": "unfused"})
    assert {c.arm for c in ops.plan(64).values()} == {"unfused"}
    with pytest.raises(ValueError, match="unknown op"):
        ops.resolve("attention", 1)


@pytest.mark.parametrize("m, arm, path", [(1, "fused", "fma"), (2, "unfused", None), (4, "unfused", None),
                                          (5, "fused", "dot"), (16, "fused", "dot")])
def test_lookup_is_by_interval(m, arm, path):
    ops = quiet(table_dict(SHAPES, BUCKETS))
    for op in ks.OPS:
        got, cfg = ops.resolve(op, m)
        assert got == arm and cfg.get("path") == path
    # the device the kernels can run on: the CPU only through the interpreter (else every op runs unfused there)
    assert {c.arm for c in ops.plan(m, SHAPES, torch.float32, DEVICE).values()} == {arm}


def test_m_past_the_last_bucket_runs_the_baseline_and_says_so_once_per_op():
    ops = quiet(table_dict(SHAPES, BUCKETS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ops.choose("down_residual", 16).arm == "fused"  # the last bucket itself is tuned
        assert not caught
        for m in (17, 4096, 65536):
            choice = ops.choose("down_residual", m, 40, 56, torch.float32, "cpu")
            assert choice.arm == "unfused" and choice.config == ks.UNFUSED_CONFIG
            assert f"M={m} is past the last tuned bucket (M=16)" in choice.reason
        assert len(caught) == 1
        assert "past the dispatch table's last tuned bucket (M=16): it runs the unfused path" in str(caught[0].message)
        ops.choose("rmsnorm_qkv", 17)  # another op says so for itself, once
        assert len(caught) == 2 and "rmsnorm_qkv runs at M=17" in str(caught[1].message)


def test_past_is_measured_from_the_largest_bucket_whatever_its_arm():
    # The last bucket picked unfused: below it the interval rule holds, past it the baseline runs (and says so).
    buckets = [(1, "fused", FMA_M1), (16, "fused", DOT), (64, "unfused", ks.UNFUSED_CONFIG)]
    ops = quiet(table_dict(SHAPES, buckets))
    assert ops.resolve("o_proj_residual", 12) == ("fused", DOT)
    assert ops.choose("o_proj_residual", 40).reason == "table bucket m=64 picked unfused"
    with pytest.warns(RuntimeWarning, match=r"last tuned bucket \(M=64\)"):
        assert "past the last tuned bucket" in ops.choose("o_proj_residual", 65).reason


@pytest.mark.parametrize("m", [17, 40])
def test_each_site_past_the_last_bucket_computes_what_the_baseline_does(m, monkeypatch):
    fused_ops, base_ops = quiet(table_dict(SHAPES, BUCKETS)), Dispatcher()
    for name in ks.OPS:
        monkeypatch.setattr(dispatch, name, lambda *a, _name=name, **kw: pytest.fail(f"{_name} ran fused at M={m}"))
    args = _inputs(m, torch.Generator().manual_seed(m))
    with pytest.warns(RuntimeWarning, match="past the dispatch table's last tuned bucket"):
        for op in ks.OPS:
            torch.testing.assert_close(getattr(fused_ops, op)(*args[op]), getattr(base_ops, op)(*args[op]))


def test_table_sources_path_dict_and_object(tmp_path):
    data = table_dict(SHAPES, BUCKETS)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    for source in (path, str(path), data, load_table(data)):
        assert quiet(source).resolve("down_residual", 1)[0] == "fused"


def test_stale_kernel_hash_falls_back_for_that_op_only():
    data = table_dict(SHAPES, BUCKETS)
    data["ops"]["o_proj_residual"]["kernel_hash"] = "0123456789abcdef"
    with pytest.warns(RuntimeWarning, match="kernel hash for o_proj_residual") as record:
        ops = Dispatcher(data)
    assert len(record) == 1
    assert ops.resolve("o_proj_residual", 1)[0] == "unfused"
    assert "kernel source changed" in ops.plan(1)["o_proj_residual"].reason
    assert ops.resolve("rmsnorm_qkv", 1)[0] == "fused"


def test_other_hardware_warns_once_and_keeps_matching_ops():
    fp = {**table_dict(SHAPES, BUCKETS)["fingerprint"], "device_name": "NVIDIA H100 80GB HBM3", "sm_count": 132}
    with pytest.warns(RuntimeWarning, match="tuned on NVIDIA H100") as record:
        ops = Dispatcher(table_dict(SHAPES, BUCKETS, fingerprint=fp))
    assert len(record) == 1
    assert ops.resolve("rmsnorm_qkv", 1)[0] == "fused"


@pytest.mark.parametrize("change, field", [
    (lambda d: d["ops"]["rmsnorm_qkv"].pop("N"), "ops.rmsnorm_qkv.N"),
    (lambda d: d["ops"]["down_residual"]["buckets"][1].update(arm="fast"), "ops.down_residual.buckets[1].arm"),
    (lambda d: d["ops"]["down_residual"]["buckets"][0]["config"].update(BLOCK_K="32"),
     "ops.down_residual.buckets[0].config.BLOCK_K"),
    (lambda d: d["fingerprint"].pop("sm_count"), "fingerprint.sm_count"),
    (lambda d: d.update(format=3), "format"),  # 1 and 2 (decode attention) exist
])
def test_malformed_table_is_refused_naming_the_field(change, field):
    data = table_dict(SHAPES, BUCKETS)
    change(data)
    with pytest.raises(TableError) as err:
        Dispatcher(data)
    assert err.value.field == field
    assert field in str(err.value)


def test_unreadable_file_is_a_table_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TableError, match="not JSON"):
        Dispatcher(tmp_path / "bad.json")


def test_config_the_op_cannot_run_falls_back_for_its_bucket():
    data = table_dict(SHAPES, BUCKETS)
    data["ops"]["rmsnorm_qkv"]["buckets"][2]["config"]["BLOCK_K"] = 48  # not in the search space
    with pytest.warns(RuntimeWarning, match="m=16 cannot run here"):
        ops = Dispatcher(data)
    assert ops.resolve("rmsnorm_qkv", 16)[0] == "unfused"
    assert ops.resolve("rmsnorm_qkv", 1)[0] == "fused"


def test_other_shape_or_dtype_runs_the_baseline():
    ops = quiet(table_dict(SHAPES, BUCKETS))
    with pytest.warns(RuntimeWarning, match="tuned for 48x40"):
        assert ops.choose("rmsnorm_qkv", 1, 64, 40, torch.float32).arm == "unfused"
    with pytest.warns(RuntimeWarning, match="tuned for float32"):
        assert ops.choose("rmsnorm_qkv", 1, 48, 40, torch.bfloat16).arm == "unfused"
    assert ops.choose("rmsnorm_qkv", 1, 48, 40, torch.float32).arm == "fused"


def test_only_search_space_keys_reach_the_launcher():
    data = table_dict(SHAPES, BUCKETS)
    data["ops"]["down_residual"]["buckets"][0]["config"]["__class__"] = "os.system"
    _, cfg = quiet(data).resolve("down_residual", 1)
    assert cfg == FMA_M1


def test_cpu_without_the_interpreter_runs_the_baseline(monkeypatch):
    ops = quiet(table_dict(SHAPES, BUCKETS))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.warns(RuntimeWarning, match="need a GPU"):
        assert ops.choose("down_residual", 1, 40, 56, torch.float32, "cpu").arm == "unfused"


def _inputs(m, gen):
    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    return {
        "rmsnorm_qkv": (r(m, 40), 1 + 0.1 * r(40), r(48, 40, scale=40**-0.5), 1e-6),
        "o_proj_residual": (r(m, 64), r(m, 40), r(40, 64, scale=64**-0.5)),
        "rmsnorm_gate_up_silu": (r(m, 40), 1 + 0.1 * r(40), r(112, 40, scale=40**-0.5), 1e-6),
        "down_residual": (r(m, 56, scale=0.5), r(m, 40), r(40, 56, scale=56**-0.5)),
        "lm_head": (r(m, 40), 1 + 0.1 * r(40), r(96, 40, scale=40**-0.5), 1e-6),
    }


@requires_interpreter
@pytest.mark.parametrize("m", [1, 3, 6])
def test_each_site_runs_the_chosen_arm_and_matches_the_baseline(m, monkeypatch):
    fused_ops, base_ops = quiet(table_dict(SHAPES, BUCKETS)), Dispatcher()
    calls = []
    for name in ks.OPS:
        real = getattr(dispatch, name)
        monkeypatch.setattr(dispatch, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or
                            _real(*a, **kw))
    args = _inputs(m, torch.Generator().manual_seed(m))
    for op in ks.OPS:
        out = getattr(fused_ops, op)(*args[op])
        ref = getattr(base_ops, op)(*args[op])
        for a, b in zip(out if isinstance(out, tuple) else (out,), ref if isinstance(ref, tuple) else (ref,),
                        strict=True):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max())
    expected = [] if fused_ops.resolve("rmsnorm_qkv", m)[0] == "unfused" else list(ks.OPS)
    assert calls == expected
