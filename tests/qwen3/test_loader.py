"""Loading a Hugging Face folder (whole or sharded), its errors, and random weights."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from qwen3.config import PRESETS
from qwen3.loader import load_model, random_weights
from tests.qwen3.helpers import TINY, hf_model


@pytest.fixture(scope="module")
def hf():
    return hf_model(TINY, seed=5)


def logits(model, ids):
    model.allocate_kv_cache(ids.shape[0], ids.shape[1])
    with torch.inference_mode():
        return model.compute_logits(model(ids, torch.arange(ids.shape[1]).expand_as(ids)))


def test_sharded_checkpoint_loads_like_a_single_file(hf, tmp_path):
    hf.save_pretrained(tmp_path / "one")
    hf.save_pretrained(tmp_path / "shards", max_shard_size="20KB")
    assert (tmp_path / "shards" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "shards").glob("*.safetensors"))) > 2
    ids = torch.tensor([[1, 2, 3, 4]])
    one = load_model(tmp_path / "one", dtype=torch.float32, device="cpu")
    assert torch.equal(logits(one, ids), logits(load_model(tmp_path / "shards", dtype=torch.float32, device="cpu"),
                                                   ids))
    # q/k/v stacked by rows, gate rows before up rows (the layout before the gains are folded in).
    sd = hf.state_dict()
    layer = load_model(tmp_path / "one", dtype=torch.float32, device="cpu", fold_gains=False).model.layers[1]
    assert torch.equal(layer.self_attn.qkv_proj.weight, torch.cat([sd[f"model.layers.1.self_attn.{p}_proj.weight"]
                                                                   for p in "qkv"]))
    gate = layer.mlp.gate_up_proj.weight[:TINY.intermediate_size]
    assert torch.equal(gate, sd["model.layers.1.mlp.gate_proj.weight"])


def test_weights_take_the_dtype(hf, tmp_path):
    hf.save_pretrained(tmp_path)
    model = load_model(tmp_path, dtype=torch.float16, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float16}


def test_missing_or_partial_folders_are_clear_errors(hf, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "nothing", device="cpu")
    with pytest.raises(ValueError, match="no config.json"):
        load_model(tmp_path, device="cpu")
    hf.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").rename(tmp_path / "m" / "weights.bin")
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        load_model(tmp_path / "m", device="cpu")
    tensors = load_file(tmp_path / "m" / "weights.bin")
    del tensors["model.layers.1.self_attn.k_proj.weight"]
    save_file(tensors, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match="lacks model.layers.1.self_attn.k_proj.weight"):
        load_model(tmp_path / "m", device="cpu")


def test_missing_shard_and_wrong_shapes(hf, tmp_path):
    hf.save_pretrained(tmp_path / "s", max_shard_size="20KB")
    next((tmp_path / "s").glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(ValueError, match="lacks shard"):
        load_model(tmp_path / "s", device="cpu")
    hf.save_pretrained(tmp_path / "w")
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    (tmp_path / "w" / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 64}))
    with pytest.raises(ValueError, match="gate_up_proj.weight has shape"):
        load_model(tmp_path / "w", device="cpu")
    (tmp_path / "w" / "config.json").write_text(json.dumps({**cfg, "rope_parameters": {"rope_type": "yarn"}}))
    with pytest.raises(ValueError, match="rope type 'yarn'"):
        load_model(tmp_path / "w", device="cpu")


def test_random_weights_are_seeded_and_run():
    config = PRESETS["qwen3-tiny"]
    a = random_weights(config, torch.float32, "cpu", seed=1)
    b = random_weights(config, torch.float32, "cpu", seed=1)
    assert a.lm_head.weight is a.model.embed_tokens.weight  # the tiny preset ties them
    ids = torch.tensor([[3, 1, 4]])
    out = logits(a, ids)
    assert torch.isfinite(out).all() and torch.equal(out, logits(b, ids))
    assert not torch.equal(out, logits(random_weights(config, torch.float32, "cpu", seed=2), ids))


def test_a_config_is_named_after_its_folder_or_its_own_file(tmp_path):
    """config.json takes its folder's name; any other file its own stem, so that two configs side by side
    are two models in the database (until the thirty-third session both took the folder's name, and the
    second one's shapes were refused as another shape of the first model); a label inside wins."""
    from qwen3.config import PRESETS, from_hf_config

    raw = PRESETS["qwen3-tiny"].to_hf_dict()
    raw.pop("_name_or_path", None)
    folder = tmp_path / "Qwen3-Small"
    folder.mkdir()
    for file in ("config.json", "wide.json", "narrow.json"):
        (folder / file).write_text(json.dumps(raw))
    assert from_hf_config(folder).name == from_hf_config(folder / "config.json").name == "Qwen3-Small"
    assert [from_hf_config(folder / f).name for f in ("wide.json", "narrow.json")] == ["wide", "narrow"]
    (folder / "labelled.json").write_text(json.dumps({**raw, "_name_or_path": "org/model"}))
    assert from_hf_config(folder / "labelled.json").name == "org/model"
