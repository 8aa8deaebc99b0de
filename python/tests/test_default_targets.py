"""Which layers get LoRA adapters: the built-in default trains every linear layer by the model's
real names; a user's config keeps its own list (KAITO's behaviour), warned when names match nothing."""
import json

import yaml

from conftest import adapted_leaves, run_trainer, write_config
from headroom_runtime.config import DEFAULT_CONFIG

PHI3_LINEAR = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}  # HF Phi-3 fuses q/k/v and gate/up
KAITO_PHI3_LIST = ["k_proj", "q_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]


def test_builtin_default_asks_for_all_linear():
    lora = yaml.safe_load(DEFAULT_CONFIG.read_text())["training_config"]["LoraConfig"]
    assert lora["target_modules"] == "all-linear"


def test_no_config_trains_every_linear_layer_of_phi3(models, tmp_path):
    out = tmp_path / "out"
    result = run_trainer("--output", str(out), "--max-steps", "2")
    assert result.rc == 0, result.stderr[-3000:]
    # peft records all-linear resolved to module paths (model.layers.0.self_attn.qkv_proj, ...).
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert {t.rsplit(".", 1)[-1] for t in targets} == PHI3_LINEAR
    assert adapted_leaves(out) == PHI3_LINEAR  # lm_head is not among them
    assert "target_unmatched" not in result.stderr


def _config_without_targets(path, **lora):
    config = write_config(path, max_steps=2)
    doc = yaml.safe_load(config.read_text())
    doc["training_config"]["LoraConfig"].pop("target_modules")
    doc["training_config"]["LoraConfig"].update(lora)
    config.write_text(yaml.safe_dump(doc))
    return config


def test_user_config_without_targets_keeps_kaitos_phi3_list_with_a_warning(models, tmp_path):
    out = tmp_path / "out"
    result = run_trainer("--config", str(_config_without_targets(tmp_path / "c.yaml")), "--model", "tiny-phi3", "--output", str(out))
    assert result.rc == 0, result.stderr[-3000:]
    assert sorted(json.loads((out / "adapter_config.json").read_text())["target_modules"]) == sorted(KAITO_PHI3_LIST)
    assert adapted_leaves(out) == {"o_proj", "down_proj"}
    warning = next(line for line in result.stderr.splitlines() if "target_unmatched" in line)
    for name in ("k_proj", "q_proj", "v_proj", "gate_proj", "up_proj"):
        assert name in warning
    assert "all-linear" in warning


def test_user_config_list_is_kept(models, tmp_path):
    out = tmp_path / "out"
    config = _config_without_targets(tmp_path / "c.yaml", target_modules=["qkv_proj"])
    result = run_trainer("--config", str(config), "--model", "tiny-phi3", "--output", str(out))
    assert result.rc == 0, result.stderr[-3000:]
    assert adapted_leaves(out) == {"qkv_proj"}
    assert "target_unmatched" not in result.stderr
