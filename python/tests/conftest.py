"""Shared helpers: run the real trainer as a subprocess and check its events against the
TypeScript zod schema (src/runtime/events.ts), the contract with the supervisor."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"
sys.path.insert(0, str(PYTHON_DIR))

# One thread each: the CI machine has two cores and other work on them.
ENV = {
    **os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
}
ENV.pop("YAML_FILE_PATH", None)
ENV.pop("DEFAULT_TARGET_MODULES", None)
# ENV keeps HEADROOM_CPU_BF16 when the caller set it: tests compute their expectation from the
# same probe (headroom_runtime._device) the trainer uses, and override it only where they say so.

# A fast configuration for tests: short sequences, 4 rows a batch, no checkpoints unless asked.
TEST_CONFIG = {
    "ModelConfig": {"torch_dtype": "float32", "local_files_only": True},
    "LoraConfig": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"},
    "TrainingArguments": {
        "per_device_train_batch_size": 4, "max_length": 96, "learning_rate": 0.003, "max_steps": 20,
        "save_strategy": "no", "gradient_checkpointing": False, "optim": "adamw_torch", "warmup_steps": 0,
    },
    "DatasetConfig": {"shuffle_dataset": True, "train_test_split": 1},
}


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip().startswith("{")]

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def of(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]

    def done(self) -> dict:
        done = self.of("done")
        assert len(done) == 1, f"expected one done event\n{self.stdout}\n{self.stderr[-3000:]}"
        return done[0]["summary"]


def write_config(path: Path, quant: dict | None = None, **training) -> Path:
    config = json.loads(json.dumps(TEST_CONFIG))
    config["TrainingArguments"].update(training)
    if quant:
        config["QuantizationConfig"] = quant
    path.write_text(yaml.safe_dump({"training_config": config}))
    return path


def run_trainer(*args: str, timeout: int = 240, env: dict | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "headroom_runtime.train", *args], cwd=REPO, env=env or ENV,
        capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def check_schema(lines: list[str]) -> None:
    """Parses every event line with trainerEvent from src/runtime/events.ts (zod)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot check events against the TypeScript schema")
    script = (
        "import { trainerEvent } from " + json.dumps(str(REPO / "src/runtime/events.ts")) + ";\n"
        "import { readFileSync } from 'node:fs';\n"
        "const lines = readFileSync(0, 'utf8').split('\\n').filter((l) => l.trim());\n"
        "const bad = [];\n"
        "lines.forEach((l, i) => { const r = trainerEvent.safeParse(JSON.parse(l));"
        " if (!r.success) bad.push({ line: l.slice(0, 200), issues: r.error.issues }); });\n"
        "console.log(JSON.stringify({ checked: lines.length, bad }));\n"
    )
    proc = subprocess.run(["node", "--import", "tsx", "-e", script], cwd=REPO, input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["checked"] == len(lines) and report["checked"] > 0
    assert report["bad"] == [], json.dumps(report["bad"], indent=1)


@pytest.fixture(scope="session")
def models() -> dict[str, Path]:
    from headroom_runtime import assets

    return {name: assets.ensure(name) for name in ("tiny-phi3", "tiny-llama")}


def adapted_leaves(adapter_dir: Path) -> set[str]:
    """The module names that the saved adapter holds LoRA weights for (e.g. {"qkv_proj", "o_proj"})."""
    from safetensors.torch import load_file

    keys = load_file(str(adapter_dir / "adapter_model.safetensors")).keys()
    return {k.split(".lora_A")[0].rsplit(".", 1)[-1] for k in keys if ".lora_A" in k}
