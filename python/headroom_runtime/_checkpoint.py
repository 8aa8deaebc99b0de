"""Checkpoints: everything needed to continue a run exactly where it stopped.

output_dir/checkpoint-N/ holds the trainable weights (the adapter, or the whole model for
full fine-tuning), optimizer.pt, scheduler.pt, rng_state.pt and trainer_state.json. Each is
written under a temporary name and renamed, so a directory named checkpoint-N is complete.
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.json"


def save(directory: Path, step: int, model, optimizer, scheduler, state: dict, method: str, keep: int | None,
         model_state: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Writes checkpoint-N. Under FSDP the caller passes the gathered full model and optimizer
    state dicts (model_state, optimizer_state); otherwise they are read from model and optimizer."""
    import torch

    final = directory / f"checkpoint-{step}"
    staging = directory / f".checkpoint-{step}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if method == "full":
        from safetensors.torch import save_model  # handles tied (shared) weights

        if model_state is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in model_state.items()}, str(staging / "model.safetensors"))
        else:
            save_model(model, str(staging / "model.safetensors"))
    else:
        model.save_pretrained(staging, safe_serialization=True, **({"state_dict": model_state} if model_state is not None else {}))
    torch.save(optimizer_state if optimizer_state is not None else optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, staging / "rng_state.pt")
    (staging / STATE_FILE).write_text(json.dumps({**state, "step": step, "method": method}, indent=1))
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    if keep:
        for old in sorted(list_checkpoints(directory), key=_step_of)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


# What save() writes; src/runtime/checkpoints.ts checks the same list (keep them in step).
REQUIRED_FILES = (STATE_FILE, "optimizer.pt", "scheduler.pt", "rng_state.pt")
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")


def is_complete(path: Path) -> bool:
    """Every file save() writes is there: an empty or cut-short checkpoint-N is never resumed from."""
    return all((path / f).is_file() for f in REQUIRED_FILES) and any((path / f).is_file() for f in WEIGHT_FILES)


def list_checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoint-N directories (an incomplete one must not hide the complete one below it)."""
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name) and is_complete(p)]


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def find(path: Path) -> Path | None:
    """A checkpoint directory itself, or the latest checkpoint inside an output directory."""
    if (path / STATE_FILE).is_file():
        return path if is_complete(path) else None
    found = list_checkpoints(path)
    return max(found, key=_step_of) if found else None


def load(path: Path, model, optimizer, scheduler, method: str) -> dict:
    """Restores weights, optimizer, scheduler and RNG; returns trainer_state.json."""
    state = load_weights(path, model, method)
    load_training_state(path, optimizer, scheduler, optimizer.load_state_dict)
    return state


def load_weights(path: Path, model, method: str) -> dict:
    """Restores the trainable weights into the unwrapped model (before DDP/FSDP wrap it: FSDP's
    sharded parameters cannot take full tensors); returns trainer_state.json."""
    from safetensors.torch import load_file, load_model

    state = json.loads((path / STATE_FILE).read_text())
    if state.get("method") != method:
        raise ValueError(f"checkpoint {path} was written by a {state.get('method')} run, this run is {method}")
    if method == "full":
        load_model(model, str(path / "model.safetensors"))
    else:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"checkpoint {path} does not match this model's adapter: unexpected {result.unexpected_keys[:3]}")
    return state


def load_training_state(path: Path, optimizer, scheduler, load_optimizer) -> None:
    """Restores optimizer (through load_optimizer: FSDP scatters a full state dict), scheduler and RNG."""
    import torch

    load_optimizer(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = torch.load(path / "rng_state.pt", weights_only=False)
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
