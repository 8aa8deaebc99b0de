"""The chunked loss under torchrun (python -m torch.distributed.run), two CPU ranks (gloo).

The trainer's World.wrap puts the model and its loss (_loss.TrainingLoss) inside DDP or FSDP2,
so the chunked loss runs in the wrapper's forward: DDP prepares its gradient all-reduce and
FSDP2's root gathers the embedding, final norm and lm_head as with the full loss. Checked here
on the tiny Llama through dist_loss_worker.py: at each of two steps the chunked loss equals the
full loss within float tolerance, and the adapters update the same (plain SGD: the update is the
gradient itself), and under DDP both ranks end with the same adapter (gradients were synced).
"""
import subprocess
import sys

import pytest
import torch

from conftest import ENV, REPO

WORKER = REPO / "python" / "tests" / "dist_loss_worker.py"


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_chunked_loss_under_torchrun_equals_the_full_loss(parallelism, models, tmp_path):
    out = tmp_path / "result.pt"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(WORKER),
            "--model", str(models["tiny-llama"]), "--parallelism", parallelism, "--out", str(out)]
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(f"{out}.{r}") for r in (0, 1)]
    r0 = ranks[0]
    assert r0["world_size"] == 2
    full, chunked = r0["full"], r0["chunked"]
    assert len(full["losses"]) == len(chunked["losses"]) == 2
    for a, b in zip(full["losses"], chunked["losses"]):
        assert b == pytest.approx(a, rel=1e-5), (full["losses"], chunked["losses"])
    # Both ranks report the same all-reduced loss.
    assert ranks[1]["chunked"]["losses"] == chunked["losses"]
    assert full["lora"] and set(full["lora"]) == set(chunked["lora"]) == set(full["before"])
    moved = max((chunked["lora"][k] - chunked["before"][k]).abs().max().item() for k in chunked["lora"])
    assert moved > 1e-3, "the adapters did not train"
    for name, weight in full["lora"].items():
        torch.testing.assert_close(chunked["lora"][name], weight, rtol=1e-4, atol=1e-6, msg=name)
    if parallelism == "ddp":
        # Each rank trained on its own half of the batch: equal weights mean DDP averaged the gradients.
        for name, weight in chunked["lora"].items():
            torch.testing.assert_close(ranks[1]["chunked"]["lora"][name], weight, rtol=0, atol=0, msg=name)
