"""Catalogued architectures built from their config.json numbers, with random weights.

The one place that turns a model's config into a model without its published weights: the
trainer's `--weights random|auto` (memory experiments at a real model's scale on a machine
that cannot download it) and bench/gpu_check.py / bench/memory_step.py use it. The numbers
come from the planner's catalog (src/catalog/families/*.ts), exported to catalog-models.json
by scripts/gen-catalog-models.ts, so Python and the planner never disagree on a shape.

Random weights measure what memory and speed measure (every tensor has the real shape and
dtype); the loss of a run on them means nothing.

    python -m headroom_runtime.random_weights count phi-3-mini-128k-instruct   # on the meta device: no memory
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("catalog-models.json")
# Where materialised random models are kept, so that a sweep's points build the model once.
CACHE_ENV = "HEADROOM_RANDOM_WEIGHTS_DIR"
# Seed of every random model: the same config gives the same weights (a resumed run's base is the one it started on).
SEED = 0


@lru_cache(maxsize=1)
def _catalog() -> list[dict]:
    return json.loads(CATALOG_FILE.read_text())["models"]


def catalog_entry(ref: str) -> dict | None:
    """The catalog entry whose id, hub id or alias is `ref` (any case), as the planner looks models up."""
    key = ref.strip().lower()
    for entry in _catalog():
        if key in {n.lower() for n in (entry["id"], entry["hfId"], *entry.get("aliases", []))}:
            return entry
    return None


def catalog_ids() -> list[str]:
    return [e["id"] for e in _catalog()]


def config_from_fields(fields: dict, **overrides):
    """A transformers config from config.json fields (model_type picks the class); overrides win."""
    from transformers import AutoConfig

    fields = {**fields, **overrides}
    model_type = fields.pop("model_type")
    return AutoConfig.for_model(model_type, **fields)


def catalog_config(ref: str, **overrides):
    """The transformers config of a catalog model, or None when `ref` is not in the catalog."""
    entry = catalog_entry(ref)
    return None if entry is None else config_from_fields(entry["config"], **overrides)


def build(config, device: str = "meta", dtype=None, seed: int = SEED):
    """The model a config describes, with random weights, created directly on `device`.

    device "meta" allocates nothing (shapes and names only: tests and parameter counts); "cuda"
    initialises on the GPU, minutes faster than a CPU for billions of parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    torch.manual_seed(seed)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)


def config_digest(config) -> str:
    """A short digest of the config's shape-defining JSON: one cache entry per distinct architecture."""
    text = json.dumps(config.to_diff_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "headroom" / "random-weights"


def materialise(config, name: str, directory: Path | None = None, device: str | None = None, dtype: str = "bfloat16") -> tuple[Path, bool]:
    """A Hugging Face model directory holding random `dtype` weights of `config`: (path, built now).

    Saved once and loaded with from_pretrained like any checkpoint, so 4/8-bit quantization
    (BitsAndBytesConfig) and every ModelConfig argument apply to it exactly as to real weights.
    bf16 by default: half the disk of fp32 (Phi-3-mini: 7.6 GB), and a fp32 run upcasts on load."""
    import torch

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name.strip("/").replace("/", "--"))[:80] or "model"
    path = Path(directory) if directory is not None else cache_root() / f"{safe}-{config_digest(config)}-{dtype}"
    if (path / "config.json").is_file() and (path / "headroom-random.json").is_file():
        return path, False
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build(config, device=device, dtype=dtype)
    # Build beside the target and rename, so an interrupted build never looks complete.
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    params = sum(p.numel() for p in model.parameters())
    (staging / "headroom-random.json").write_text(json.dumps({"name": name, "seed": SEED, "dtype": dtype, "params": params}))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    try:
        staging.rename(path)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a concurrent build finished first: keep its copy
        if not (path / "headroom-random.json").is_file():
            raise
    return path, True


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "count":
        config = catalog_config(argv[1])
        if config is None:
            print(f"unknown catalog model {argv[1]!r}; known: {', '.join(catalog_ids())}", file=sys.stderr)
            return 1
        model = build(config, device="meta")
        print(json.dumps({"model": catalog_entry(argv[1])["id"], "params": sum(p.numel() for p in model.parameters()),
                          "vocab": config.vocab_size, "layers": config.num_hidden_layers}))
        return 0
    print("usage: python -m headroom_runtime.random_weights count CATALOG_MODEL", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
