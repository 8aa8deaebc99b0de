"""Model and tokenizer loading, quantization, LoRA, and saving: the recipe's building blocks."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from . import assets
from ._device import CPU_BF16_ENV, cpu_has_native_bf16
from .events import InputError, log

EMBEDDED = {"default": "tiny-phi3", "tiny-phi3": "tiny-phi3", "tiny-llama": "tiny-llama"}
# KAITO sets DEFAULT_TARGET_MODULES to this for presets whose name starts with `phi-3`
# (pkg/workspace/tuning/preset_tuning.go). On Hugging Face's Phi-3 (fused qkv_proj and
# gate_up_proj) only o_proj and down_proj match it; that is KAITO's behaviour, kept here.
KAITO_PHI3_TARGETS = "k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj"
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "half": "float16", "auto": "auto"}


def resolve_model(cli_model: str | None, model_cfg: dict, given: dict) -> tuple[str, str]:
    """(a local directory or hub id, the flag or key it came from). Embedded names build on demand."""
    if cli_model:
        ref, key = cli_model, "--model"
    elif "pretrained_model_name_or_path" in given:
        ref, key = str(model_cfg["pretrained_model_name_or_path"]), "ModelConfig.pretrained_model_name_or_path"
    else:
        ref, key = "default", "--model"
    if ref in EMBEDDED:
        return str(assets.ensure(EMBEDDED[ref])), key
    # Hub ids are `name` or `org/name`; anything else that does not exist is a bad path.
    looks_local = ref.startswith((".", "/", "~")) or ref.count("/") > 1 or ref.endswith("/")
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError("model", f"model directory {ref} has no config.json ({key})", key)
        return str(path), key
    if looks_local:
        raise InputError("model", f"model path {ref} does not exist ({key}); pass a model directory, a hub id, or `default`", key)
    from .random_weights import catalog_entry

    entry = catalog_entry(ref)
    if entry is not None:  # a catalog name, as `headroom plan --model` takes it: its hub id
        return entry["hfId"], key
    return ref, key  # a hub id such as microsoft/Phi-3-mini-4k-instruct


# --weights: where the base's weights come from. `pretrained` (the default) needs the real ones;
# `auto` uses them when present, else random ones built from the config; `random` always builds
# random ones (memory and speed experiments: the loss of such a run means nothing).
WEIGHT_MODES = ("pretrained", "auto", "random")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class ModelSource:
    """Where the run's model and tokenizer come from, decided before anything is loaded."""

    ref: str  # what the user named, resolved (a directory or a hub id)
    key: str  # the flag or config key it came from
    random: bool = False
    config: object = None  # random: the transformers config the weights are built from
    config_from: str | None = None  # random: where that config came from, in words
    tokenizer_ref: str | None = None
    tokenizer_note: str | None = None

    def event(self, mode: str) -> dict:
        """The start event's `weights` object."""
        if not self.random:
            return {"mode": mode, "source": "pretrained"}
        return {"mode": mode, "source": "random", "configFrom": self.config_from, "tokenizer": self.tokenizer_ref,
                "note": "random weights built from the model's config: memory and tokens/s are the real model's, the loss means nothing"}


def _offline(model_cfg: dict) -> bool:
    flag = lambda name: os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
    return bool(model_cfg.get("local_files_only")) or flag("HF_HUB_OFFLINE") or flag("TRANSFORMERS_OFFLINE")


def weights_present(ref: str, model_cfg: dict) -> bool:
    """Whether from_pretrained can get the weights: in the directory, in the Hugging Face cache, or on a reachable hub."""
    path = Path(ref)
    if path.is_dir():
        return any((path / f).is_file() for f in WEIGHT_FILES) or any(path.glob("*.safetensors"))
    from huggingface_hub import try_to_load_from_cache

    revision = model_cfg.get("revision") or "main"
    for name in WEIGHT_FILES:
        try:
            if isinstance(try_to_load_from_cache(ref, name, cache_dir=model_cfg.get("cache_dir"), revision=revision), str):
                return True
        except ValueError:  # not a valid repo id
            return False
    if _offline(model_cfg):
        return False
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(ref, revision=revision, timeout=10)
    except Exception:  # unreachable, unknown or gated: from_pretrained could not get them either
        return False
    return any(s.rfilename.endswith((".safetensors", ".bin")) for s in info.siblings or [])


def _random_config(ref: str, key: str, model_cfg: dict):
    """(config, where it came from): the directory's config.json, the catalog's numbers, or a cached config.json."""
    from transformers import AutoConfig

    from .random_weights import catalog_config, catalog_ids

    if Path(ref).is_dir():
        return AutoConfig.from_pretrained(ref, trust_remote_code=bool(model_cfg.get("trust_remote_code"))), f"{ref}/config.json"
    config = catalog_config(ref)
    if config is not None:
        return config, f"Headroom's catalog ({ref}, src/catalog)"
    try:
        return AutoConfig.from_pretrained(ref, local_files_only=True, cache_dir=model_cfg.get("cache_dir"),
                                          revision=model_cfg.get("revision") or "main"), f"{ref} config.json (Hugging Face cache)"
    except (OSError, ValueError):
        raise InputError("model", f"--weights random: no config for {ref} ({key}): it is not a catalog model ({', '.join(catalog_ids())}), "
                         "not a directory and not in the Hugging Face cache; pass a directory holding its config.json", key) from None


def _has_tokenizer(ref: str, model_cfg: dict) -> bool:
    path = Path(ref)
    if path.is_dir():
        return (path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(ref, f, cache_dir=model_cfg.get("cache_dir"), revision=model_cfg.get("revision") or "main"), str)
                   for f in ("tokenizer.json", "tokenizer.model"))
    except ValueError:
        return False


def resolve_source(ref: str, key: str, model_cfg: dict, mode: str) -> ModelSource:
    """Decides real or random weights (and which tokenizer) before anything is loaded; says so in the log."""
    if mode not in WEIGHT_MODES:
        raise InputError("config", f"--weights {mode!r} is not known; use {', '.join(WEIGHT_MODES)}", "--weights")
    if mode == "pretrained" or (mode == "auto" and weights_present(ref, model_cfg)):
        if mode == "pretrained" and not weights_present(ref, model_cfg):
            where = (f"directory {ref} holds a config.json but no weights ({', '.join(WEIGHT_FILES[:3])}...)" if Path(ref).is_dir()
                     else f"{ref} is not in the Hugging Face cache and the hub is {'not to be asked (offline / local_files_only)' if _offline(model_cfg) else 'unreachable'}")
            raise InputError("model", f"no weights for model {ref} ({key}): {where}; pass a model directory with its weights, "
                             "or --weights random to build it from its config with random weights (memory experiments: the loss means nothing)", key)
        return ModelSource(ref, key, tokenizer_ref=ref)
    config, config_from = _random_config(ref, key, model_cfg)
    source = ModelSource(ref, key, random=True, config=config, config_from=config_from)
    if _has_tokenizer(ref, model_cfg):
        source.tokenizer_ref = ref
    else:
        # The tokenizers this repo trains locally (assets.py): its ids (1,024) are valid ids of any
        # real vocabulary, and the embedding and lm_head keep the real model's vocab_size.
        tiny = "tiny-llama" if getattr(config, "model_type", "") == "llama" else "tiny-phi3"
        source.tokenizer_ref = str(assets.ensure(tiny))
        source.tokenizer_note = (f"no tokenizer for {ref} here: using the embedded {tiny} tokenizer (trained locally, {assets.VOCAB_SIZE} tokens); "
                                 f"the model keeps its {config.vocab_size}-token vocabulary")
    why = "--weights random" if mode == "random" else f"--weights auto and no weights for {ref} here"
    log(f"{why}: building {ref} from {config_from} with random weights (seed 0); memory and tokens/s are the real model's, the loss means nothing")
    if source.tokenizer_note:
        log(source.tokenizer_note)
    return source


def check_vocabulary(tokenizer, source: ModelSource) -> None:
    """Random weights with another model's tokenizer: every token id must exist in the model's vocabulary."""
    vocab = getattr(source.config, "vocab_size", None)
    if source.random and vocab is not None and len(tokenizer) > vocab:
        raise InputError("model", f"tokenizer {source.tokenizer_ref} has {len(tokenizer)} tokens, more than {source.ref}'s vocabulary of {vocab}: "
                         "pass a model directory that holds its own tokenizer", source.key)


def materialise_random(source: ModelSource, device: str) -> str:
    """The directory of the source's random weights (built once, then cached), for load_model."""
    from .random_weights import cache_root, materialise

    path, built = materialise(source.config, source.ref, device="cuda" if device == "cuda" else "cpu")
    log(f"{'built' if built else 'reusing'} random weights for {source.ref} in {path} (cache: {cache_root()})")
    return str(path)


def compute_dtype(requested, device: str, what: str):
    """The torch dtype to use; on a CPU without native bf16/fp16 matmuls, float32 (and say so)."""
    import torch

    name = DTYPES.get(str(requested).replace("torch.", ""), None) if requested is not None else None
    if requested is not None and name is None:
        raise InputError("config", f"{what}: unknown dtype {requested!r}; use float32, bfloat16 or float16", what)
    if name in (None, "auto"):
        return torch.float32
    if device == "cpu" and name != "float32" and not cpu_has_native_bf16():
        log(f"{what}={name}: this CPU has no native {name} matmul (it would be emulated and slow); computing in float32"
            f" (set {CPU_BF16_ENV}=1 to compute in {name} anyway)")
        return torch.float32
    return getattr(torch, name)


def load_tokenizer(ref: str, model_cfg: dict, key: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            ref, local_files_only=bool(model_cfg.get("local_files_only")), revision=model_cfg.get("revision") or "main",
            trust_remote_code=bool(model_cfg.get("trust_remote_code")), cache_dir=model_cfg.get("cache_dir"),
        )
    except (OSError, ValueError) as exc:
        raise InputError("model", f"cannot load a tokenizer from {ref} ({key}): {exc}", key) from None
    if tokenizer.pad_token is None:  # KAITO: pad with eos
        tokenizer.pad_token = tokenizer.eos_token
    template = model_cfg.get("chat_template")
    if template:
        # KAITO: inline when it contains {, } or a newline, else a file path.
        if any(ch in template for ch in "{}\n"):
            tokenizer.chat_template = template
        elif Path(template).is_file():
            tokenizer.chat_template = Path(template).read_text()
        else:
            raise InputError("config", f"ModelConfig.chat_template file {template} does not exist", "ModelConfig.chat_template")
    return tokenizer


def bnb_config(quant: dict, bits: int, device: str):
    """BitsAndBytesConfig from the QuantizationConfig section (4 or 8 bits)."""
    from transformers import BitsAndBytesConfig

    kwargs = {k: v for k, v in quant.items() if k not in ("quant_method",)}
    kwargs["load_in_4bit"], kwargs["load_in_8bit"] = bits == 4, bits == 8
    kwargs["bnb_4bit_compute_dtype"] = compute_dtype(quant.get("bnb_4bit_compute_dtype"), device, "QuantizationConfig.bnb_4bit_compute_dtype")
    if device == "cpu" and bits == 4 and kwargs.get("bnb_4bit_quant_type", "fp4") == "fp4":
        log("bnb_4bit_quant_type=fp4 (BitsAndBytesConfig's default); set nf4 for QLoRA as in KAITO's template")
    return BitsAndBytesConfig(**{k: v for k, v in kwargs.items() if v is not None or k.startswith("llm_int8_skip")})


def load_model(ref: str, key: str, model_cfg: dict, device: str, quantization=None):
    """AutoModelForCausalLM.from_pretrained with ModelConfig's arguments, on one device."""
    from transformers import AutoModelForCausalLM

    dtype = compute_dtype(model_cfg.get("torch_dtype"), device, "ModelConfig.torch_dtype")
    kwargs = dict(
        dtype=dtype, local_files_only=bool(model_cfg.get("local_files_only")), revision=model_cfg.get("revision") or "main",
        trust_remote_code=bool(model_cfg.get("trust_remote_code")), cache_dir=model_cfg.get("cache_dir"),
        # This recipe trains on one device; KAITO's "auto" would spread a model over several GPUs.
        device_map={"": 0} if device == "cuda" else "cpu",
    )
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg["attn_implementation"]
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    try:
        model = AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    except (OSError, ValueError) as exc:
        raise InputError("model", f"cannot load model {ref} ({key}): {exc}", key) from None
    model.config.use_cache = False  # KAITO; the KV cache is useless in training
    return model


def enable_gradient_checkpointing(model, train: dict) -> None:
    kwargs = train.get("gradient_checkpointing_kwargs") or {"use_reentrant": False}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()


def prepare_for_kbit(model, train: dict):
    """peft's k-bit preparation (fp32 norms and lm_head, input grads), as KAITO calls it."""
    from peft import prepare_model_for_kbit_training

    kwargs = train.get("gradient_checkpointing_kwargs") or {"use_reentrant": False}
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=bool(train.get("gradient_checkpointing")), gradient_checkpointing_kwargs=kwargs
    )


def target_modules(lora: dict, model) -> list[str] | str | None:
    """LoraConfig.target_modules, else KAITO's DEFAULT_TARGET_MODULES, else PEFT's per-architecture default."""
    if lora.get("target_modules"):
        return lora["target_modules"]
    if os.environ.get("DEFAULT_TARGET_MODULES"):
        return os.environ["DEFAULT_TARGET_MODULES"].split(",")
    if getattr(model.config, "model_type", "") == "phi3":
        return KAITO_PHI3_TARGETS.split(",")
    return None


def attach_lora(model, lora: dict):
    from peft import LoraConfig, get_peft_model

    fields = {k: v for k, v in lora.items() if v is not None and k not in ("peft_type", "runtime_config")}
    fields["target_modules"] = target_modules(lora, model)
    if not fields.get("loftq_config"):
        fields.pop("loftq_config", None)
    try:
        config = LoraConfig(**fields)
        model = get_peft_model(model, config)
    except (ValueError, TypeError) as exc:
        raise InputError("config", f"LoraConfig: {exc}", "LoraConfig.target_modules") from None
    matched = sorted({name.split(".")[-2] for name, _ in model.named_modules() if name.endswith(".lora_A")})
    log(f"LoRA r={config.r} alpha={config.lora_alpha} on {', '.join(matched)} (target_modules={fields['target_modules']})")
    if isinstance(fields["target_modules"], (list, tuple)):
        # peft trains the names that match and is silent about the rest (KAITO's Phi-3 list on HF Phi-3).
        adapted = [name for name, _ in model.named_modules() if name.endswith(".lora_A")]
        unmatched = [t for t in fields["target_modules"] if not any(n.endswith(f".{t}.lora_A") for n in adapted)]
        if unmatched:
            log(f"warning target_unmatched: target_modules {', '.join(unmatched)} match no module of this model; "
                f"only {', '.join(matched)} train. Name the model's modules or use \"all-linear\"")
    return model


def parameter_counts(model) -> tuple[int, int]:
    """(all parameters as the model defines them, trainable). A packed 4-bit weight counts its logical size."""
    total = trainable = 0
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        n = math.prod(state.shape) if state is not None and getattr(state, "shape", None) is not None else p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    return total, trainable


def save_final(model, tokenizer, method: str, directory: Path, state_dict: dict | None = None) -> list[str]:
    """LoRA/QLoRA: adapter_model.safetensors + adapter_config.json (what KAITO pushes); full: the model.

    state_dict: the full state gathered from FSDP shards (the module's own holds only this rank's)."""
    model.save_pretrained(directory, safe_serialization=True, **({"state_dict": state_dict} if state_dict is not None else {}))
    if method == "full":
        tokenizer.save_pretrained(directory)
    return sorted(p.name for p in directory.iterdir())
