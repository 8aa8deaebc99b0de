"""The trainer under torchrun (python -m torch.distributed.run) on two CPU ranks (gloo).

DDP and FSDP2 runs on the tiny model: every event says its rank, rank 0 alone reports the run
and writes one adapter, both strategies train the same weights as one process with the same
effective batch, SIGTERM stops every rank after the same step with one consistent checkpoint,
and --resume-from continues it to the same result. QLoRA + FSDP is refused with the reason.
"""
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ENV, REPO, Result, check_schema, run_trainer, write_config

STEPS = 8
PER_DEVICE = 2  # x 2 ranks = the one-process batch of 4


def torchrun(nproc: int, *args: str, timeout: int = 300) -> Result:
    proc = subprocess.run(_torchrun_argv(nproc, *args), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _torchrun_argv(nproc: int, *args: str) -> list[str]:
    # --standalone: a local c10d rendezvous on a free port, so tests never collide on one.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "headroom_runtime.train", *args]


def _config(tmp: Path, batch: int) -> Path:
    return write_config(tmp / f"config-{batch}.yaml", per_device_train_batch_size=batch, max_steps=STEPS,
                        save_strategy="steps", save_steps=3)


@pytest.fixture(scope="module")
def runs(models, tmp_path_factory):
    """One DDP and one FSDP run on 2 ranks (batch 2 each) and one 1-process run (batch 4)."""
    tmp = tmp_path_factory.mktemp("dist")
    out = {}
    for name, parallelism in (("ddp", "ddp"), ("fsdp", "fsdp")):
        result = torchrun(2, "--config", str(_config(tmp, PER_DEVICE)), "--model", "tiny-llama", "--output", str(tmp / name),
                          "--parallelism", parallelism)
        out[name] = (result, tmp / name)
    single = run_trainer("--config", str(_config(tmp, PER_DEVICE * 2)), "--model", "tiny-llama", "--output", str(tmp / "single"))
    out["single"] = (single, tmp / "single")
    out["config"] = _config(tmp, PER_DEVICE)
    return out


@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_two_ranks_train_and_rank_zero_reports(runs, name):
    result, output = runs[name]
    assert result.rc == 0, result.stderr[-4000:]
    check_schema(result.lines)
    events = result.events
    assert {e.get("rank") for e in events} == {0, 1}, "every event of a distributed run carries its rank"
    assert [e["rank"] for e in result.of("start")] == [0] and [e["rank"] for e in result.of("done")] == [0]
    start = result.of("start")[0]
    assert start["ranks"] == 2 and start["parallelism"] == name
    assert start["effectiveBatch"] == PER_DEVICE * 2 * 1 and start["perDeviceBatch"] == PER_DEVICE
    for rank in (0, 1):
        steps = [e for e in result.of("step") if e["rank"] == rank]
        assert [e["step"] for e in steps] == list(range(1, STEPS + 1))
        assert steps[-1]["memory"]["peakAllocatedBytes"] > 0
    # Both ranks report the same (all-reduced) loss each step, and it drops.
    by_step = {}
    for e in result.of("step"):
        by_step.setdefault(e["step"], set()).add(e["loss"])
    assert all(len(v) == 1 for v in by_step.values())
    summary = result.done()
    assert summary["state"] == "succeeded" and summary["steps"] == STEPS
    assert summary["lastLoss"] < summary["firstLoss"]
    assert summary["ranks"] == 2 and len(summary["measuredPeakBytesPerRank"]) == 2
    assert all(p > 0 for p in summary["measuredPeakBytesPerRank"])
    assert summary["measuredPeakBytes"] == max(summary["measuredPeakBytesPerRank"])
    # One adapter, written once (rank 0), with full (unsharded) tensors, and the sentinel.
    assert (output / "adapter_model.safetensors").is_file() and (output / "fine_tuning_completed.txt").is_file()
    assert sorted(e["step"] for e in result.of("checkpoint")) == [3, 6]
    assert json.loads((output / "run.json").read_text())["state"] == "succeeded"
    assert not list(output.glob(".*.tmp"))


def test_ddp_fsdp_and_one_process_train_the_same_weights(runs):
    """Same global batches (per-device x ranks), same updates: DDP 2 x 2, FSDP 2 x 2 and 1 x 4
    agree, so the loss at each step of 2 ranks with half the batch is within 2% of 1 rank's."""
    single = runs["single"][0]
    assert single.rc == 0, single.stderr[-3000:]
    ddp_loss = [e["loss"] for e in runs["ddp"][0].of("step") if e["rank"] == 0]
    fsdp_loss = [e["loss"] for e in runs["fsdp"][0].of("step") if e["rank"] == 0]
    single_loss = [e["loss"] for e in single.of("step")]
    assert len(single_loss) == len(ddp_loss) == STEPS
    for a, b in zip(ddp_loss, single_loss):
        assert abs(a - b) / b < 0.02, (ddp_loss, single_loss)
    assert all(abs(a - b) < 1e-4 for a, b in zip(ddp_loss, fsdp_loss)), (ddp_loss, fsdp_loss)
    ddp = load_file(str(runs["ddp"][1] / "adapter_model.safetensors"))
    fsdp = load_file(str(runs["fsdp"][1] / "adapter_model.safetensors"))
    assert ddp.keys() == fsdp.keys() and all(ddp[k].shape == fsdp[k].shape for k in ddp)
    assert all(torch.allclose(ddp[k], fsdp[k], atol=1e-5) for k in ddp)


def test_sigterm_stops_every_rank_at_one_step_then_resume(runs, tmp_path):
    out = tmp_path / "out"
    args = ["--config", str(runs["config"]), "--model", "tiny-llama", "--output", str(out)]
    env = {**ENV, "HEADROOM_MEMORY_EVERY": "0"}
    proc = subprocess.Popen(_torchrun_argv(2, *args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"type":"step"' in line and json.loads(line)["step"] == 4 and json.loads(line)["rank"] == 0:
            proc.send_signal(signal.SIGTERM)  # to torchrun, which forwards it to every rank
    rc = proc.wait(timeout=120)
    first = Result(rc, "".join(lines), proc.stderr.read())
    assert first.rc != 0
    check_schema(first.lines)
    last = {rank: max(e["step"] for e in first.of("step") if e["rank"] == rank) for rank in (0, 1)}
    assert last[0] == last[1] and 4 <= last[0] < STEPS, last
    stopped_at = last[0]
    assert [e["step"] for e in first.of("checkpoint") if e["reason"] == "signal"] == [stopped_at]
    assert first.done()["state"] == "preempted"
    assert (out / f"checkpoint-{stopped_at}" / "optimizer.pt").is_file()
    assert not (out / "adapter_model.safetensors").exists()

    resumed = torchrun(2, *args, "--resume-from", str(out))
    assert resumed.rc == 0, resumed.stderr[-4000:]
    assert resumed.of("start")[0]["resumedFromStep"] == stopped_at
    assert [e["step"] for e in resumed.of("step") if e["rank"] == 1] == list(range(stopped_at + 1, STEPS + 1))
    assert resumed.done()["steps"] == STEPS
    # Nothing lost: the same weights as the uninterrupted 2-rank run.
    a, b = load_file(str(out / "adapter_model.safetensors")), load_file(str(runs["ddp"][1] / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)

    # The data position counts global batches of 2 ranks: one process may not continue it.
    other = run_trainer("--config", str(runs["config"]), "--model", "tiny-llama", "--output", str(tmp_path / "one"),
                        "--resume-from", str(out / f"checkpoint-{stopped_at}"))
    assert other.rc == 1
    error = other.of("error")[0]
    assert error["path"] == "--resume-from" and "written by 2 rank(s), this run has 1" in error["message"]


def test_qlora_with_fsdp_is_refused_with_the_reason(tmp_path):
    nf4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "float32"}
    config = write_config(tmp_path / "config.yaml", quant=nf4)
    result = torchrun(2, "--config", str(config), "--model", "tiny-llama", "--output", str(tmp_path / "o"), "--parallelism", "fsdp")
    assert result.rc != 0
    errors = result.of("error")
    assert errors and all(e["kind"] == "config" and e["path"] == "--parallelism" for e in errors)
    assert "bitsandbytes" in errors[0]["message"] and "--parallelism ddp" in errors[0]["message"]


def test_fsdp_without_torchrun_is_refused(tmp_path):
    config = write_config(tmp_path / "config.yaml")
    result = run_trainer("--config", str(config), "--model", "tiny-llama", "--output", str(tmp_path / "o"), "--parallelism", "fsdp")
    assert result.rc == 1
    assert result.of("error")[0]["path"] == "--parallelism" and "torchrun" in result.of("error")[0]["message"]


def test_fsdp_checkpoint_names_parameters_as_the_model_does_and_resumes_to_the_same_adapter(runs, tmp_path):
    """FSDP's full state dicts are keyed under the module it sharded (the model inside
    _loss.TrainingLoss): the checkpoint stores the model's own names, and a resume maps them back,
    so resuming the straight run's checkpoint-6 ends at its adapter."""
    import shutil

    result, output = runs["fsdp"]
    assert result.rc == 0, result.stderr[-3000:]
    optimizer = torch.load(output / "checkpoint-6" / "optimizer.pt", weights_only=False)
    names = list(optimizer["state"])
    assert names and all(isinstance(n, str) and n.startswith("base_model.model.") for n in names), names[:3]
    assert {p for g in optimizer["param_groups"] for p in g["params"]} == set(names)
    out = tmp_path / "resumed"
    shutil.copytree(output / "checkpoint-6", out / "checkpoint-6")
    resumed = torchrun(2, "--config", str(runs["config"]), "--model", "tiny-llama", "--output", str(out),
                       "--parallelism", "fsdp", "--resume-from", str(out / "checkpoint-6"))
    assert resumed.rc == 0, resumed.stderr[-4000:]
    assert resumed.of("start")[0]["resumedFromStep"] == 6 and resumed.done()["steps"] == STEPS
    straight = load_file(str(output / "adapter_model.safetensors"))
    again = load_file(str(out / "adapter_model.safetensors"))
    assert straight.keys() == again.keys()
    assert all(torch.allclose(straight[k], again[k], atol=1e-6) for k in straight)
