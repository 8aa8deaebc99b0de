"""The embedded default models: built locally, idempotent, real architectures."""
import json
import time

from headroom_runtime import assets


def test_ensure_is_idempotent_and_fast(models):
    before = (models["tiny-phi3"] / "model.safetensors").stat().st_mtime_ns
    began = time.perf_counter()
    assert assets.ensure("tiny-phi3") == models["tiny-phi3"]
    assert time.perf_counter() - began < 1.0
    assert (models["tiny-phi3"] / "model.safetensors").stat().st_mtime_ns == before


def test_tiny_models_are_real_architectures(models):
    from transformers import AutoTokenizer

    phi3 = json.loads((models["tiny-phi3"] / "config.json").read_text())
    llama = json.loads((models["tiny-llama"] / "config.json").read_text())
    assert phi3["model_type"] == "phi3" and llama["model_type"] == "llama"
    assert phi3["hidden_size"] % 64 == 0 and phi3["vocab_size"] % 64 == 0
    params = json.loads((models["tiny-phi3"] / "headroom-asset.json").read_text())["params"]
    assert 1_000_000 < params < 10_000_000
    tok = AutoTokenizer.from_pretrained(models["tiny-phi3"])
    assert tok.pad_token_id == phi3["pad_token_id"] and tok.eos_token_id == phi3["eos_token_id"]
    text = "héllo wörld 👋 `json.dumps`"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # byte-level: lossless
