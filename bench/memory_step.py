"""One real training step of a Phi-3-shaped model with random weights, measured.

Shared by bench/qlora-cpu-measure.ts (CPU, MemTracker's live tensor bytes at real widths with
fewer layers) and bench/gpu-check.sh (CUDA, the whole Phi-3-mini-128k). Builds the model from
its config.json numbers (no download), saves random bf16 weights once, loads them the way the
trainer does (python/headroom_runtime/_model.py: from_pretrained with BitsAndBytesConfig for
qlora, then peft's prepare_model_for_kbit_training, then LoRA), and runs each configuration's
step: forward + backward + fused AdamW, with AdamW's state created beforehand so it is alive
through backward as in the steady state (_memory.py). One JSON object per configuration on
stdout; a configuration that runs out of memory is recorded (state "oom") and the next runs.

    python bench/memory_step.py --device cpu --layers 1 --configs '[{"method":"qlora","seq":2048,"gc":false,"attention":"sdpa"}]'

A configuration may set `dropout` (LoraConfig.lora_dropout, default 0.0 as KAITO's templates).
Configurations are grouped by method and dropout so that each model is loaded once per pair
(peft builds the dropout module when it wraps the model).
"""
from __future__ import annotations

import argparse
import gc as pygc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from headroom_runtime import random_weights  # noqa: E402  (the one builder of random-weight models)

# microsoft/Phi-3-mini-128k-instruct as the planner's catalog has it (src/catalog/families/phi3.ts,
# exported to python/headroom_runtime/catalog-models.json). Its LongRoPE rope_scaling is left out:
# it changes the rotary frequencies, not any tensor's shape.
MODEL = "phi-3-mini-128k-instruct"
PHI3_MINI_128K = random_weights.catalog_entry(MODEL)["config"]
PHI3_ALL_LINEAR = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--layers", type=int, default=32, help="decoder blocks (real widths; fewer blocks to fit a CPU)")
    p.add_argument("--configs", required=True, help="JSON list of {method, seq, gc, attention, batch?, rank?, targets?, dropout?}")
    p.add_argument("--cache", default=os.environ.get("HEADROOM_BENCH_CACHE", "/tmp/headroom-bench-models"))
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def model_dir(cache: str, layers: int, device: str = "cpu") -> Path:
    """Random bf16 weights of a Phi-3-mini-128k-shaped model with `layers` blocks, saved once
    (initialised on the GPU when there is one: 3.8B parameters initialise slowly on a CPU),
    by the builder the trainer's --weights random uses (headroom_runtime/random_weights.py)."""
    config = random_weights.catalog_config(MODEL, num_hidden_layers=layers)
    path, _ = random_weights.materialise(config, MODEL, directory=Path(cache) / f"phi3-mini-128k-random-L{layers}",
                                          device="cuda" if device == "cuda" else "cpu")
    return path


def load(path: Path, method: str, device: str, attention: str):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs = dict(dtype=torch.bfloat16, device_map={"": 0} if device == "cuda" else "cpu", attn_implementation=attention)
    if method == "qlora":
        # KAITO's qlora template: nf4, double quant, bf16 compute.
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16,
        )
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    return model


def prepare(model, method: str, cfg: dict):
    """As the trainer: k-bit preparation for qlora (its fp32 casts), LoRA on every Linear."""
    import peft

    if method == "qlora":
        # Checkpointing is switched per configuration below; the fp32 casts are what matters here.
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = cfg.get("targets") or PHI3_ALL_LINEAR
    # lora_dropout > 0 makes peft put an nn.Dropout before each lora_A (nn.Identity at 0.0).
    dropout = float(cfg.get("dropout", 0.0))
    return peft.get_peft_model(model, peft.LoraConfig(r=int(cfg.get("rank", 8)), lora_alpha=8, lora_dropout=dropout, target_modules=targets))


def set_mode(model, cfg: dict) -> None:
    base = model.get_base_model()
    if cfg["gc"]:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    else:
        base.gradient_checkpointing_disable()
    base.set_attn_implementation(cfg["attention"])


def nvidia_smi_used_bytes() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
        index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0])
        return int(out.stdout.strip().splitlines()[index]) * 2**20  # MiB
    except Exception:
        return None


def run_config(model, optimizer, cfg: dict, device: str, quant_tensors) -> dict:
    import torch

    from headroom_runtime._memory import MemoryMeter

    set_mode(model, cfg)
    model.train()
    batch, seq = int(cfg.get("batch", 1)), int(cfg["seq"])
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, seq), device=device)
    result = {**cfg, "batch": batch, "device": device}
    began = time.perf_counter()

    def step():
        # The trainer's idiom: keep only the loss, so the logits are not held through backward.
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        del loss
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        if device == "cuda":
            pygc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step()
            torch.cuda.synchronize()
            result.update(
                state="ok", allocatedBeforeBytes=before, maxMemoryAllocatedBytes=torch.cuda.max_memory_allocated(),
                maxMemoryReservedBytes=torch.cuda.max_memory_reserved(), nvidiaSmiUsedBytes=nvidia_smi_used_bytes(),
            )
        else:
            meter = MemoryMeter("cpu")
            with meter.measure(model, optimizer, quant_tensors):
                step()
            result.update(state="ok", peakAllocatedBytes=meter.peak_bytes, breakdown=meter.peak_breakdown)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        optimizer.zero_grad(set_to_none=True)
        result.update(state="oom", error=str(exc).splitlines()[0][:300])
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
        optimizer.zero_grad(set_to_none=True)
        result.update(state="oom", error=str(exc).splitlines()[0][:300])
    finally:
        pygc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    result["seconds"] = round(time.perf_counter() - began, 2)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    configs = json.loads(args.configs)
    path = model_dir(args.cache, args.layers, args.device)
    for method, dropout in dict.fromkeys((c["method"], float(c.get("dropout", 0.0))) for c in configs):
        group = [c for c in configs if c["method"] == method and float(c.get("dropout", 0.0)) == dropout]
        model, optimizer, quant_tensors = setup(path, method, args.device, group[0])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        for cfg in group:
            out = run_config(model, optimizer, cfg, args.device, quant_tensors)
            out.update(layers=args.layers, trainableParams=trainable, dropout=dropout)
            print(json.dumps(out), flush=True)
        del model, optimizer, quant_tensors
        release(args.device)
    return 0


def setup(path: Path, method: str, device: str, cfg: dict):
    """The model as the trainer builds it, and a fused AdamW whose state already exists."""
    import torch

    from headroom_runtime._memory import quantization_state_tensors

    model = prepare(load(path, method, device, cfg["attention"]), method, cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # Fused AdamW, the trainer's default; its state is created now (zero gradients make a zero update)
    # so that it is alive through every measured backward, as from step 2 of a real run.
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0, fused=True)
    for p in trainable:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer, quantization_state_tensors(model)


def release(device: str) -> None:
    pygc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
