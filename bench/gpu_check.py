"""The planner against one real CUDA training step per configuration, on Phi-3-mini-128k.

Run through bench/gpu-check.sh. For about a dozen configurations (LoRA/QLoRA, checkpointing
on/off, sdpa/eager, 1k-16k tokens) it asks the planner (`bin/headroom plan --json` with the
matching flags), runs one step of the real model (bench/memory_step.py: random weights built
from the catalog's config by headroom_runtime/random_weights.py, the builder behind the trainer's
--weights random; no download), and writes torch.cuda.max_memory_allocated / max_memory_reserved
and nvidia-smi's used memory beside the prediction to bench/results/gpu-check.json. An OOM in
one configuration is recorded and the next one runs; configurations that would start after the
time budget are recorded as skipped.

--dry-run (no GPU): plans every configuration the same way and runs one tiny configuration on
CPU (a one-block model at real widths, 256 tokens) through the same code, so the whole path is
exercised; the JSON says dryRun: true and carries no CUDA figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import memory_step  # noqa: E402  (bench/memory_step.py, beside this file)

MODEL = "phi-3-mini-128k-instruct"
TARGETS = ",".join(memory_step.PHI3_ALL_LINEAR)

# Ordered cheap to expensive so that a time-out loses the longest ones; grouped by method (one load each).
CONFIGS = [
    {"method": "lora", "seq": 1024, "gc": False, "attention": "sdpa"},
    {"method": "lora", "seq": 1024, "gc": False, "attention": "eager"},
    {"method": "lora", "seq": 2048, "gc": False, "attention": "eager"},
    {"method": "lora", "seq": 4096, "gc": False, "attention": "sdpa"},
    {"method": "lora", "seq": 4096, "gc": True, "attention": "sdpa"},
    {"method": "lora", "seq": 16384, "gc": True, "attention": "sdpa"},
    {"method": "qlora", "seq": 1024, "gc": True, "attention": "sdpa"},
    {"method": "qlora", "seq": 2048, "gc": True, "attention": "eager"},
    {"method": "qlora", "seq": 4096, "gc": False, "attention": "sdpa"},
    {"method": "qlora", "seq": 4096, "gc": True, "attention": "sdpa"},
    {"method": "qlora", "seq": 8192, "gc": False, "attention": "sdpa"},
    {"method": "qlora", "seq": 16384, "gc": True, "attention": "sdpa"},
]
DRY_RUN_CONFIG = {"method": "qlora", "seq": 256, "gc": True, "attention": "sdpa"}


def plan_args(cfg: dict, device: str, model: str = MODEL) -> list[str]:
    """The `headroom plan` flags that describe what memory_step.py runs."""
    args = ["plan", "--model", model, "--method", cfg["method"], "--dtype", "bf16", "--rank", "8", "--alpha", "8",
            "--targets", TARGETS, "--batch", str(cfg.get("batch", 1)), "--seq", str(cfg["seq"]), "--attention", cfg["attention"],
            "--grad-checkpointing" if cfg["gc"] else "--no-grad-checkpointing", "--optimizer", "adamw", "--device", device, "--json"]
    if cfg["method"] == "qlora":
        args += ["--quant", "nf4", "--double-quant"]
    return args


def plan(cfg: dict, device: str, model: str = MODEL) -> dict:
    args = plan_args(cfg, device, model)
    done = subprocess.run([str(ROOT / "bin" / "headroom"), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if done.returncode != 0:
        return {"command": "headroom " + " ".join(args), "error": (done.stderr or done.stdout).strip()[:500]}
    p = json.loads(done.stdout)
    return {"command": "headroom " + " ".join(args), "peakBytes": p["peakBytes"], "peakAllocatedBytes": p["peakAllocatedBytes"], "breakdown": p["breakdown"]}


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="no GPU: plan everything, run one tiny configuration on CPU")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting configurations after this many seconds")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu-check.json"))
    args = p.parse_args(argv)
    began = time.perf_counter()

    import torch

    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible to torch; run with --dry-run to check the script on CPU", file=sys.stderr)
        return 1
    plans = {json.dumps(c, sort_keys=True): plan(c, "cuda") for c in CONFIGS}
    run_configs = [DRY_RUN_CONFIG] if args.dry_run else CONFIGS
    layers = 1 if args.dry_run else memory_step.PHI3_MINI_128K["num_hidden_layers"]

    results: dict[str, dict] = {}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        rows = []
        for c in CONFIGS + ([DRY_RUN_CONFIG] if args.dry_run else []):
            key = json.dumps(c, sort_keys=True)
            measured = results.get(key)
            planned = plans[key]
            row = {**c, "batch": 1, "planned": planned, "measured": measured}
            if measured and measured.get("state") == "ok" and "peakAllocatedBytes" in planned:
                got = measured.get("maxMemoryAllocatedBytes", measured.get("peakAllocatedBytes"))
                row["allocatedMeasuredOverPredicted"] = round(got / planned["peakAllocatedBytes"], 4)
                if measured.get("nvidiaSmiUsedBytes"):
                    row["deviceMeasuredOverPredicted"] = round(measured["nvidiaSmiUsedBytes"] / planned["peakBytes"], 4)
            rows.append(row)
        doc = {
            "dryRun": args.dry_run,
            "note": "dry run on CPU: no CUDA figures were measured" if args.dry_run else "one step per configuration on CUDA",
            "machine": {"gpu": None if args.dry_run else gpu_name(), "host": platform.node(), "torch": torch.__version__,
                        "allocConf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")},
            "model": MODEL, "layers": layers, "seconds": round(time.perf_counter() - began, 1), "rows": rows,
        }
        tmp = out_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(out_path)

    cache = os.environ.get("HEADROOM_BENCH_CACHE", "/tmp/headroom-bench-models")
    path = memory_step.model_dir(cache, layers, device)
    if args.dry_run:
        # The dry run's one-block model is planned from its own config.json, on the device it runs on.
        plans[json.dumps(DRY_RUN_CONFIG, sort_keys=True)] = plan(DRY_RUN_CONFIG, "cpu", str(path / "config.json"))
    for method in dict.fromkeys(c["method"] for c in run_configs):
        group = [c for c in run_configs if c["method"] == method]
        if time.perf_counter() - began > args.budget_s:
            for c in group:
                results[json.dumps(c, sort_keys=True)] = {"state": "skipped", "reason": f"time budget of {args.budget_s:.0f} s spent"}
            continue
        model, optimizer, quant_tensors = memory_step.setup(path, method, device, group[0])
        for c in group:
            key = json.dumps(c, sort_keys=True)
            if time.perf_counter() - began > args.budget_s:
                results[key] = {"state": "skipped", "reason": f"time budget of {args.budget_s:.0f} s spent"}
                continue
            results[key] = memory_step.run_config(model, optimizer, c, device, quant_tensors)
            print(json.dumps({"config": c, **results[key]}), flush=True)
            write()
        del model, optimizer, quant_tensors
        memory_step.release(device)
    write()
    print(f"wrote {out_path} in {time.perf_counter() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
