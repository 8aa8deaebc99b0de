"""KAITO training_config parsing: ConfigMap or bare document, YAML_FILE_PATH, unknown keys."""
import pytest

from headroom_runtime.config import DEFAULT_CONFIG, load_config, resolve
from headroom_runtime.events import InputError

KAITO_EXAMPLE = "/work/shared/kaito-data/examples/fine-tuning/kaito_configmap_tuning_phi_3.yaml"

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata: {name: my-tuning}
data:
  training_config.yaml: |
    training_config:
      QuantizationConfig:
        load_in_4bit: true
      TrainingArguments:
        learning_rate: 5e-3
        per_device_train_batch_size: 2
"""


def test_configmap_and_sft_defaults(tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text(CONFIGMAP)
    cfg = load_config(str(path))
    assert cfg.quant_bits() == 4
    assert cfg.train["learning_rate"] == 0.005  # YAML 1.1 reads 5e-3 as a string; coerced like HfArgumentParser
    assert cfg.train["gradient_checkpointing"] is True and cfg.train["max_length"] == 1024  # SFTConfig defaults
    assert cfg.dataset["train_test_split"] == 0.8  # KAITO's code default


def test_yaml_file_path_is_honoured(tmp_path, monkeypatch):
    path = tmp_path / "training_config.yaml"
    path.write_text("training_config:\n  TrainingArguments:\n    max_steps: 7\n")
    monkeypatch.setenv("YAML_FILE_PATH", str(path))
    assert load_config(None).train["max_steps"] == 7
    monkeypatch.delenv("YAML_FILE_PATH")
    assert load_config(None).source == f"default:{DEFAULT_CONFIG}"


@pytest.mark.parametrize("given, path, words", [
    ({"TrainingArgs": {}}, "training_config.TrainingArgs", "did you mean TrainingArguments?"),
    ({"LoraConfig": {"rank": 8}}, "LoraConfig.rank", "not a known key"),
    ({"QuantizationConfig": {"load_in_4bit": True, "load_in_8bit": True}}, "QuantizationConfig.load_in_4bit", "choose one"),
    ({"DatasetConfig": {"train_test_split": 0}}, "DatasetConfig.train_test_split", "(0, 1]"),
    ({"TrainingArguments": {"max_steps": "many"}}, "TrainingArguments.max_steps", "cannot use 'many'"),
    ({"TrainingArguments": {"max_seq_length": 2048}}, "TrainingArguments.max_seq_length", "rename it to max_length"),
    ({"TrainingArguments": {"logging_dir": "tb"}}, "TrainingArguments.logging_dir", "TENSORBOARD_LOGGING_DIR"),
    ({"DataCollator": {"tokenizer": "x"}}, "DataCollator.tokenizer", "the trainer passes the model's own tokenizer"),
])
def test_invalid_configs_name_the_key(given, path, words):
    with pytest.raises(InputError) as err:
        resolve(given)
    assert err.value.kind == "config" and err.value.path == path and words in err.value.message


def test_kaito_example_configmap_parses():
    import os

    if not os.path.exists(KAITO_EXAMPLE):
        pytest.skip("shared KAITO data not present")
    cfg = load_config(KAITO_EXAMPLE)
    assert cfg.lora["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"] and cfg.quant_bits() == 4


def test_lora_keys_of_the_installed_peft_are_accepted():
    cfg = resolve({"LoraConfig": {"target_modules": "all-linear", "exclude_modules": ["o_proj"]}})
    assert cfg.lora["exclude_modules"] == ["o_proj"]
