"""Random weights from a model's config (headroom_runtime/random_weights.py, train.py --weights).

Full-size models are only ever built on the meta device here (Phi-3-mini in fp32 is 15 GB);
the materialising path runs end to end on the tiny model's config without its weight files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from headroom_runtime import _model, random_weights
from headroom_runtime.events import InputError

# microsoft/Phi-3-mini-128k-instruct: 3,821,079,552 parameters as the hub's safetensors index
# totals them and as the planner's catalog counts them (src/catalog/models.ts findModelSync example).
PHI3_MINI_PARAMS = 3_821_079_552


@pytest.fixture()
def no_weights_dir(tmp_path: Path, models) -> Path:
    """The tiny Phi-3's directory without its weight files: config.json and the tokenizer only."""
    d = tmp_path / "tiny-phi3-config-only"
    d.mkdir()
    for f in models["tiny-phi3"].iterdir():
        if not f.name.endswith((".safetensors", ".bin")):
            shutil.copy(f, d / f.name)
    return d


@pytest.fixture()
def offline(monkeypatch, tmp_path: Path):
    """No hub and an empty Hugging Face cache: nothing but local directories has weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv(random_weights.CACHE_ENV, str(tmp_path / "random-cache"))


def test_phi3_mini_128k_builds_from_the_catalog_on_the_meta_device():
    config = random_weights.catalog_config("microsoft/Phi-3-mini-128k-instruct")
    model = random_weights.build(config, device="meta")
    assert sum(p.numel() for p in model.parameters()) == PHI3_MINI_PARAMS
    assert all(p.device.type == "meta" for p in model.parameters())  # nothing allocated
    assert config.vocab_size == 32064
    assert model.get_input_embeddings().weight.shape == (32064, 3072)
    assert model.lm_head.weight.shape == (32064, 3072)
    assert len(model.model.layers) == 32
    names = {n.rsplit(".", 1)[-1] for n, m in model.model.layers[0].named_modules() if type(m).__name__ == "Linear"}
    assert names == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}  # Phi-3's fused modules
    # Every spelling the planner's catalog answers to finds the same entry.
    for name in ("phi-3-mini-128k-instruct", "PHI3-MINI-128K", "microsoft/phi-3-mini-128k-instruct"):
        assert random_weights.catalog_entry(name)["id"] == "phi-3-mini-128k-instruct"
    assert random_weights.catalog_entry("no-such-model") is None


def test_the_catalog_export_builds_every_entry_on_meta():
    for model_id in random_weights.catalog_ids():
        config = random_weights.catalog_config(model_id)
        model = random_weights.build(config, device="meta")
        assert model.get_input_embeddings().weight.shape[0] == config.vocab_size, model_id
        assert len(model.model.layers) == config.num_hidden_layers, model_id


def test_a_directory_without_weights_needs_the_flag(no_weights_dir: Path, offline):
    with pytest.raises(InputError) as err:
        _model.resolve_source(str(no_weights_dir), "--model", {}, "pretrained")
    message = err.value.message
    assert "\n" not in message
    assert str(no_weights_dir) in message and "no weights" in message and "--weights random" in message

    source = _model.resolve_source(str(no_weights_dir), "--model", {}, "auto")
    assert source.random and source.tokenizer_ref == str(no_weights_dir)
    assert source.config_from == f"{no_weights_dir}/config.json"
    assert source.event("auto")["source"] == "random"


def test_auto_keeps_real_weights_when_present(models, offline):
    source = _model.resolve_source(str(models["tiny-phi3"]), "--model", {}, "auto")
    assert not source.random
    assert source.event("auto") == {"mode": "auto", "source": "pretrained"}
    # random asks for random weights even where the real ones are.
    assert _model.resolve_source(str(models["tiny-phi3"]), "--model", {}, "random").random


def test_a_catalog_model_absent_here_is_built_from_the_catalog_with_the_local_tokenizer(offline, models):
    ref, _ = _model.resolve_model("phi-3-mini-128k-instruct", {}, {})
    assert ref == "microsoft/Phi-3-mini-128k-instruct"  # a catalog name is its hub id
    with pytest.raises(InputError) as err:
        _model.resolve_source(ref, "--model", {}, "pretrained")
    assert "microsoft/Phi-3-mini-128k-instruct" in err.value.message and "--weights random" in err.value.message
    assert "Hugging Face cache" in err.value.message

    source = _model.resolve_source(ref, "--model", {}, "auto")
    assert source.random and source.config.vocab_size == 32064 and source.config.hidden_size == 3072
    assert "catalog" in source.config_from
    assert source.tokenizer_ref == str(models["tiny-phi3"])
    assert "32064-token vocabulary" in source.tokenizer_note
    tokenizer = _model.load_tokenizer(source.tokenizer_ref, {}, "--model")
    _model.check_vocabulary(tokenizer, source)  # 1,024 tiny ids are valid Phi-3 ids


def test_unknown_models_and_too_small_vocabularies_are_refused(offline, no_weights_dir: Path):
    with pytest.raises(InputError) as err:
        _model.resolve_source("someone/not-in-the-catalog", "--model", {}, "random")
    assert "no config for someone/not-in-the-catalog" in err.value.message and "phi-3-mini-128k-instruct" in err.value.message

    config = json.loads((no_weights_dir / "config.json").read_text())
    (no_weights_dir / "config.json").write_text(json.dumps({**config, "vocab_size": 512, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 0}))
    source = _model.resolve_source(str(no_weights_dir), "--model", {}, "random")
    tokenizer = _model.load_tokenizer(source.tokenizer_ref, {}, "--model")
    with pytest.raises(InputError, match="more than .* vocabulary of 512"):
        _model.check_vocabulary(tokenizer, source)


def test_materialise_builds_once_and_loads_like_a_checkpoint(tmp_path: Path, models):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(models["tiny-llama"])
    path, built = random_weights.materialise(config, "tiny-llama", directory=tmp_path / "m", device="cpu")
    assert built and (path / "config.json").is_file()
    again, built_again = random_weights.materialise(config, "tiny-llama", directory=tmp_path / "m", device="cpu")
    assert again == path and not built_again
    model = AutoModelForCausalLM.from_pretrained(path)
    reference = random_weights.build(config, device="meta")
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == {n: tuple(p.shape) for n, p in reference.named_parameters()}
    assert json.loads((path / "headroom-random.json").read_text())["dtype"] == "bfloat16"

# The trainer end to end (a directory without weights, --weights auto, and without it the one-line
# error) runs through `headroom tune` in test/runtime/random-weights.test.ts.
