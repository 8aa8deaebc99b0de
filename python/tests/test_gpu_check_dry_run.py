"""bench/gpu-check.sh --dry-run: the script a lent GPU runs once (issue 8 item 11) must work before a GPU is lent.

No GPU here: the dry run plans every configuration it would measure on CUDA (Phi-3-mini-128k, random weights from
its config) and runs one tiny configuration on CPU through the same measuring code. This checks the plumbing (every
row planned with the command that reproduces it, the CPU row measured and compared), not accuracy: the CUDA rows
have no measurement until a GPU runs them.
"""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_plans_every_configuration_and_measures_the_cpu_one(tmp_path):
    out = tmp_path / "gpu-check.json"
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", str(ROOT / ".venv" / "bin" / "python"))}
    subprocess.run(["bash", str(ROOT / "bench" / "gpu-check.sh"), "--dry-run", "--out", str(out)], check=True, capture_output=True, text=True, env=env, timeout=420)
    d = json.loads(out.read_text())
    assert d["dryRun"] is True and d["machine"]["gpu"] is None
    assert d["model"] == "phi-3-mini-128k-instruct"
    cuda = [r for r in d["rows"] if r["measured"] is None]
    cpu = [r for r in d["rows"] if r["measured"] is not None]
    # About a dozen CUDA configurations: LoRA and QLoRA, checkpointing on and off, sdpa and eager, 1k to 16k tokens.
    assert len(cuda) >= 10
    assert {r["method"] for r in cuda} == {"lora", "qlora"}
    assert {r["gc"] for r in cuda} == {True, False}
    assert {r["attention"] for r in cuda} == {"sdpa", "eager"}
    assert min(r["seq"] for r in cuda) <= 1024 and max(r["seq"] for r in cuda) >= 16384
    for r in cuda:
        assert r["planned"]["peakAllocatedBytes"] > 0
        assert r["planned"]["command"].startswith("headroom plan --model phi-3-mini-128k-instruct ")
        assert "--device cuda" in r["planned"]["command"]
    [row] = cpu
    # The CPU row plans the model it measured: the built one-layer Phi-3, on the CPU.
    assert row["planned"]["peakAllocatedBytes"] > 0
    assert "config.json" in row["planned"]["command"] and "--device cpu" in row["planned"]["command"]
    assert row["measured"]["state"] == "ok" and row["measured"]["device"] == "cpu"
    assert row["allocatedMeasuredOverPredicted"] == round(row["measured"]["peakAllocatedBytes"] / row["planned"]["peakAllocatedBytes"], 4)
