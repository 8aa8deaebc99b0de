"""Nothing lost: SIGTERM mid-run writes a checkpoint and exits 4; --resume-from continues to
the configured step count, and the result equals an uninterrupted run's."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import ENV, REPO, Result, check_schema, run_trainer, write_config

STEPS = 24


def test_sigterm_then_resume(models, tmp_path):
    config = write_config(tmp_path / "config.yaml", max_steps=STEPS, save_strategy="steps", save_steps=5, save_total_limit=2)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "headroom_runtime.train", "--config", str(config), "--model", "tiny-llama", "--output", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"type":"step"' in line and json.loads(line)["step"] == 7:
            proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    first = Result(rc, "".join(lines), proc.stderr.read())
    assert first.rc == 4, first.stderr[-3000:]
    check_schema(first.lines)
    stopped_at = first.of("step")[-1]["step"]
    assert 7 <= stopped_at < STEPS
    signal_checkpoints = [e for e in first.of("checkpoint") if e["reason"] == "signal"]
    assert len(signal_checkpoints) == 1 and signal_checkpoints[0]["step"] == stopped_at
    assert [e["step"] for e in first.of("checkpoint") if e["reason"] == "save_strategy"] == [5]
    assert first.done()["state"] == "preempted"
    assert not (out / "fine_tuning_completed.txt").exists() and not (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "run.json").read_text())["state"] == "preempted"

    resumed = run_trainer("--config", str(config), "--model", "tiny-llama", "--output", str(out), "--resume-from", str(out))
    assert resumed.rc == 0, resumed.stderr[-3000:]
    check_schema(resumed.lines)
    assert resumed.of("start")[0]["resumedFromStep"] == stopped_at
    assert [e["step"] for e in resumed.of("step")] == list(range(stopped_at + 1, STEPS + 1))
    summary = resumed.done()
    assert summary["state"] == "succeeded" and summary["steps"] == STEPS
    assert summary["firstLoss"] == first.of("step")[0]["loss"]  # carried over from the checkpoint
    assert (out / "adapter_model.safetensors").is_file() and (out / "fine_tuning_completed.txt").is_file()
    # save_total_limit=2 keeps the two newest checkpoints.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == sorted([f"checkpoint-{s}" for s in sorted({5, 10, 15, 20, stopped_at})[-2:]])

    # Same data order, optimizer state and RNG: the resumed adapter equals an uninterrupted run's.
    straight = tmp_path / "straight"
    whole = run_trainer("--config", str(config), "--model", "tiny-llama", "--output", str(straight))
    assert whole.rc == 0
    assert [e["loss"] for e in whole.of("step")][stopped_at:] == [e["loss"] for e in resumed.of("step")] or all(
        abs(a - b) < 1e-4 for a, b in zip([e["loss"] for e in whole.of("step")][stopped_at:], [e["loss"] for e in resumed.of("step")]))
    a, b = load_file(str(out / "adapter_model.safetensors")), load_file(str(straight / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_resume_from_nothing(models, tmp_path):
    config = write_config(tmp_path / "config.yaml")
    result = run_trainer("--config", str(config), "--model", "tiny-llama", "--output", str(tmp_path / "o"), "--resume-from", str(tmp_path))
    assert result.rc == 1
    assert result.of("error")[0]["path"] == "--resume-from"


def test_an_incomplete_checkpoint_never_hides_the_complete_one_below(tmp_path):
    """An empty or cut-short checkpoint-N (no optimizer.pt) is skipped: find() returns the newest complete one."""
    from headroom_runtime import _checkpoint

    def make(step: int, files) -> Path:
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        for f in files:
            (d / f).write_text("{}")
        return d

    complete = make(4, [*_checkpoint.REQUIRED_FILES, "adapter_model.safetensors"])
    make(6, [f for f in _checkpoint.REQUIRED_FILES if f != "optimizer.pt"] + ["adapter_model.safetensors"])
    make(8, [])
    assert _checkpoint.find(tmp_path) == complete
    assert _checkpoint.find(tmp_path / "checkpoint-6") is None
