"""Reads KAITO's training_config.yaml and resolves it into the values the recipe uses.

Accepts a ConfigMap (`data["training_config.yaml"]`) or the bare `training_config:` document,
with KAITO's six sections. Like KAITO's parser (HfArgumentParser over each section's class),
an unknown section or key is an error; the message names `Section.key` and the closest
known key. Defaults are the ones KAITO's runtime gets: transformers' TrainingArguments with
TRL SFTConfig's overrides, PEFT's LoraConfig, BitsAndBytesConfig, KAITO's DatasetConfig.

    python -m headroom_runtime.config fields    # JSON: accepted keys per section, renamed and removed keys
                                                # (src/config/trainer-fields.json, for `headroom check`)
    python -m headroom_runtime.config check PATH  # JSON: {ok, path, message} as the trainer's loader decides
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .events import InputError

SECTIONS = ("ModelConfig", "QuantizationConfig", "LoraConfig", "TrainingArguments", "DatasetConfig", "DataCollator")
DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")

# KAITO's cli.ModelConfig (presets/workspace/tuning/text-generation/cli.py) plus
# attn_implementation, a Headroom extension passed to from_pretrained.
MODEL_FIELDS = {
    "pretrained_model_name_or_path": "/workspace/tfs/weights", "state_dict": None, "cache_dir": None,
    "force_download": False, "proxies": None, "output_loading_info": False, "local_files_only": False,
    "revision": "main", "trust_remote_code": False, "torch_dtype": None, "device_map": "auto",
    "chat_template": None, "attn_implementation": None,
}
# KAITO's cli.DatasetConfig; the three *_column fields are declared but unused since KAITO PR #460.
DATASET_FIELDS = {
    "dataset_path": None, "dataset_extension": None, "shuffle_dataset": True, "shuffle_seed": 42,
    "context_column": None, "response_column": "text", "messages_column": None, "train_test_split": 0.8,
}
# trl/trainer/sft_config.py (TRL >= 1.0): SFTConfig's fields on top of TrainingArguments.
SFT_FIELDS = {
    "model_init_kwargs": None, "chat_template_path": None, "dataset_text_field": "text", "dataset_kwargs": None,
    "dataset_num_proc": None, "eos_token": None, "pad_token": None, "max_length": 1024,
    "truncation_mode": "keep_start", "packing": False, "packing_strategy": "bfd", "padding_free": False,
    "pad_to_multiple_of": None, "eval_packing": None, "completion_only_loss": None, "assistant_only_loss": False,
    "loss_type": "nll", "activation_offloading": False, "shuffle_dataset": False,
    "warmup_ratio": None,  # removed from TrainingArguments in transformers 5; accepted as warmup_steps < 1
    # A Headroom extension (like ModelConfig.attn_implementation): full | chunked cross-entropy
    # (python/headroom_runtime/_loss.py). KAITO's own runtime does not know it.
    "loss_implementation": "full",
}
# SFTConfig changes these TrainingArguments defaults (trl/trainer/sft_config.py).
SFT_OVERRIDES = {"learning_rate": 2e-5, "logging_steps": 10, "gradient_checkpointing": True, "bf16": None}

# Names from older libraries (or other tools) that the installed ones refuse, with the current
# name and why: an error that names the fix, here and in `headroom check` (which reads this
# table through src/config/trainer-fields.json).
RENAMED = {
    "TrainingArguments.max_seq_length": ("max_length", "TRL renamed it; KAITO's trl>=1.0 rejects max_seq_length"),
    "TrainingArguments.evaluation_strategy": ("eval_strategy", "removed in transformers 5"),
    "TrainingArguments.no_cuda": ("use_cpu", "removed in transformers 5"),
    "TrainingArguments.group_by_length": ("train_sampling_strategy: group_by_length", "removed in transformers 5"),
    "TrainingArguments.batch_size": ("per_device_train_batch_size", "TrainingArguments has no batch_size"),
    "TrainingArguments.per_gpu_train_batch_size": ("per_device_train_batch_size", "removed in transformers 5"),
    "TrainingArguments.lr": ("learning_rate", "TrainingArguments has no lr"),
    "TrainingArguments.epochs": ("num_train_epochs", "TrainingArguments has no epochs"),
    "ModelConfig.dtype": ("torch_dtype", "KAITO's ModelConfig names it torch_dtype"),
    "LoraConfig.rank": ("r", "peft names the rank r"),
    "LoraConfig.alpha": ("lora_alpha", "peft names it lora_alpha"),
    "LoraConfig.dropout": ("lora_dropout", "peft names it lora_dropout"),
}
# Keys the installed libraries no longer take and that have no new name: what to do instead.
REMOVED = {
    "TrainingArguments.logging_dir": "removed in transformers 5: delete it and set the TENSORBOARD_LOGGING_DIR environment variable",
    "DataCollator.tokenizer": "the trainer passes the model's own tokenizer to the collator: delete it",
    "DataCollator.tf_experimental_compile": "removed in transformers 5 with TensorFlow support: delete it",
}

# The TrainingArguments keys this runtime acts on; others are accepted (KAITO accepts them)
# and reported once as having no effect here.
HONOURED_TRAINING_KEYS = (
    "output_dir", "max_steps", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
    "max_grad_norm", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio", "optim", "seed",
    "save_strategy", "save_steps", "save_total_limit", "eval_strategy", "eval_steps", "gradient_checkpointing",
    "gradient_checkpointing_kwargs", "bf16", "fp16", "max_length", "truncation_mode", "pad_to_multiple_of",
    "completion_only_loss", "assistant_only_loss", "logging_steps", "ddp_find_unused_parameters",
    "packing", "activation_offloading", "loss_implementation",
)


def section_defaults() -> dict[str, dict]:
    """Every key each section accepts, with the default KAITO's runtime would use."""
    import peft
    import transformers

    training = {f.name: _field_default(f) for f in dataclasses.fields(transformers.TrainingArguments) if f.init}
    training.update(SFT_FIELDS)
    training.update(SFT_OVERRIDES)
    quant = {
        name: p.default for name, p in inspect.signature(transformers.BitsAndBytesConfig.__init__).parameters.items()
        if name not in ("self", "kwargs")
    }
    quant["bnb_4bit_compute_dtype"] = "float32"  # BitsAndBytesConfig's None means float32
    quant["quant_method"] = "bitsandbytes"
    lora = {f.name: _field_default(f) for f in dataclasses.fields(peft.LoraConfig) if f.init}
    collator = {
        f.name: _field_default(f)
        for f in dataclasses.fields(transformers.DataCollatorForLanguageModeling) if f.init and f.name != "tokenizer"
    }
    return {
        "ModelConfig": dict(MODEL_FIELDS), "QuantizationConfig": quant, "LoraConfig": lora,
        "TrainingArguments": training, "DatasetConfig": dict(DATASET_FIELDS), "DataCollator": collator,
    }


def _field_default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


@dataclass
class TuningConfig:
    """The user's sections (`given`) and every section with defaults filled in (`resolved`)."""
    source: str
    given: dict[str, dict]
    resolved: dict[str, dict] = field(default_factory=dict)

    @property
    def model(self) -> dict: return self.resolved["ModelConfig"]
    @property
    def quant(self) -> dict: return self.resolved["QuantizationConfig"]
    @property
    def lora(self) -> dict: return self.resolved["LoraConfig"]
    @property
    def train(self) -> dict: return self.resolved["TrainingArguments"]
    @property
    def dataset(self) -> dict: return self.resolved["DatasetConfig"]
    @property
    def collator(self) -> dict: return self.resolved["DataCollator"]

    def quant_bits(self) -> int | None:
        """4 or 8 when QuantizationConfig asks for a quantized base, else None."""
        if self.quant.get("load_in_4bit"):
            return 4
        if self.quant.get("load_in_8bit"):
            return 8
        return None

    def summary(self) -> dict:
        """What the start event reports: the given keys plus the training keys in effect."""
        out = {name: {key: self.resolved[name][key] for key in values} for name, values in self.given.items()}
        train = out.setdefault("TrainingArguments", {})
        for key in HONOURED_TRAINING_KEYS:
            value = self.train.get(key)
            if value is not None and not callable(value):
                train.setdefault(key, value)
        return json.loads(json.dumps(out, default=str))

    def ignored_training_keys(self) -> list[str]:
        return sorted(k for k in self.given.get("TrainingArguments", {}) if k not in HONOURED_TRAINING_KEYS)


def config_path_from_env(cli_path: str | None) -> tuple[Path, str]:
    """--config, else $YAML_FILE_PATH (KAITO's), else the packaged default."""
    if cli_path:
        return Path(cli_path), "--config"
    if os.environ.get("YAML_FILE_PATH"):
        return Path(os.environ["YAML_FILE_PATH"]), "YAML_FILE_PATH"
    return DEFAULT_CONFIG, "default"


def load_config(cli_path: str | None = None) -> TuningConfig:
    """Parses and validates the training config; raises InputError(kind="config") naming the key."""
    path, origin = config_path_from_env(cli_path)
    if not path.is_file():
        raise InputError("config", f"training config {path} ({origin}) does not exist", str(path))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError("config", f"{path} is not valid YAML: {exc}", str(path)) from None
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        data = document.get("data") or {}
        if "training_config.yaml" not in data:
            raise InputError("config", f"ConfigMap {path} has no data[\"training_config.yaml\"] key", "data.training_config.yaml")
        try:
            document = yaml.safe_load(data["training_config.yaml"])
        except yaml.YAMLError as exc:
            raise InputError("config", f"data[\"training_config.yaml\"] is not valid YAML: {exc}", "data.training_config.yaml") from None
    if not isinstance(document, dict) or not isinstance(document.get("training_config"), dict):
        raise InputError("config", f"{path} must hold a `training_config:` map (or a ConfigMap whose data[\"training_config.yaml\"] does)", "training_config")
    given = document["training_config"]
    return resolve(given, source=f"{origin}:{path}")


def resolve(given: dict, source: str = "inline") -> TuningConfig:
    defaults = section_defaults()
    problems: list[InputError] = []
    for name, section in given.items():
        if name not in SECTIONS:
            problems.append(InputError("config", f"unknown section training_config.{name}{_did_you_mean(name, SECTIONS)}; the sections are {', '.join(SECTIONS)}", f"training_config.{name}"))
        elif section is not None and not isinstance(section, dict):
            problems.append(InputError("config", f"training_config.{name} must be a map of keys, got {type(section).__name__}", name))
    clean = {name: dict(given.get(name) or {}) for name in SECTIONS if name in given}
    resolved: dict[str, dict] = {}
    for name in SECTIONS:
        section = dict(defaults[name])
        for key, value in clean.get(name, {}).items():
            if key not in section:
                problems.append(InputError("config", _unknown_key_message(name, key, section), f"{name}.{key}"))
                continue
            try:
                section[key] = _coerce(value, defaults[name][key])
            except ValueError:
                problems.append(InputError("config", f"{name}.{key}: cannot use {value!r} where a {type(defaults[name][key]).__name__} is expected", f"{name}.{key}"))
        resolved[name] = section
    quant = resolved["QuantizationConfig"]
    if quant.get("load_in_4bit") and quant.get("load_in_8bit"):
        problems.append(InputError("config", "QuantizationConfig sets both load_in_4bit and load_in_8bit: choose one", "QuantizationConfig.load_in_4bit"))
    split = resolved["DatasetConfig"]["train_test_split"]
    if not (isinstance(split, (int, float)) and 0 < split <= 1):
        problems.append(InputError("config", f"DatasetConfig.train_test_split must be in (0, 1], got {split!r}", "DatasetConfig.train_test_split"))
    if problems:
        # Report every problem at once (torchtune's ConfigError style); the first names the path.
        first = problems[0]
        message = first.message if len(problems) == 1 else "; ".join(p.message for p in problems)
        raise InputError("config", message, first.path)
    train = resolved["TrainingArguments"]
    if train.get("bf16") is None:  # SFTConfig: bf16 unless fp16
        train["bf16"] = not train.get("fp16")
    return TuningConfig(source=source, given=clean, resolved=resolved)


def _coerce(value, default):
    """YAML 1.1 reads `5e-3` as a string; HfArgumentParser would convert it, so do we."""
    if isinstance(default, bool) and isinstance(value, str):
        if value.lower() in ("true", "yes", "1"):
            return True
        if value.lower() in ("false", "no", "0"):
            return False
        raise ValueError(value)
    if isinstance(default, float) and isinstance(value, (str, int)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str):
        return int(value)
    return value


def _unknown_key_message(section: str, key: str, known) -> str:
    path = f"{section}.{key}"
    if path in RENAMED:
        to, why = RENAMED[path]
        return f"{path} is not a known key: {why}: rename it to {to}"
    if path in REMOVED:
        return f"{path} is not a known key: {REMOVED[path]}"
    return f"{path} is not a known key{_did_you_mean(key, known)}"


def accepted_fields() -> dict:
    """What `headroom check` must accept: every key per section, the libraries they come from,
    and the renamed and removed keys with their fixes (src/config/trainer-fields.json)."""
    import importlib.metadata as metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "generatedBy": "node --import tsx scripts/gen-trainer-fields.ts (python -m headroom_runtime.config fields)",
        # TRL is not installed in this runtime: SFTConfig's fields are SFT_FIELDS above.
        "libraries": {name: version(name) for name in ("transformers", "peft", "bitsandbytes", "trl")},
        "sections": {name: sorted(values) for name, values in section_defaults().items()},
        "renamed": {path: {"to": to, "why": why} for path, (to, why) in sorted(RENAMED.items())},
        "removed": dict(sorted(REMOVED.items())),
    }


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def main(argv: list[str]) -> int:
    if argv == ["fields"]:
        print(json.dumps(accepted_fields(), indent=1))
        return 0
    if len(argv) == 2 and argv[0] == "check":
        try:
            cfg = load_config(argv[1])
        except InputError as exc:
            print(json.dumps({"ok": False, "path": exc.path, "message": exc.message}))
            return 1
        print(json.dumps({"ok": True, "config": cfg.summary()}))
        return 0
    print("usage: python -m headroom_runtime.config fields | check PATH", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
