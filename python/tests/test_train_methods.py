"""LoRA, QLoRA (nf4 on CPU through bitsandbytes) and full fine-tuning, 20 steps each, on tiny
Phi-3 and Llama models; plus the default run (no arguments) that the README promises."""
import json

import pytest
import torch

from conftest import ENV, adapted_leaves, check_schema, run_trainer, write_config
from headroom_runtime._device import cpu_has_native_bf16

NF4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "float32", "bnb_4bit_use_double_quant": True}


def _assert_succeeded(result, out, steps):
    assert result.rc == 0, result.stderr[-4000:]
    check_schema(result.lines)
    step_events = result.of("step")
    assert [e["step"] for e in step_events] == list(range(1, steps + 1))
    summary = result.done()
    assert summary["state"] == "succeeded" and summary["steps"] == steps
    assert (out / "fine_tuning_completed.txt").read_text().startswith("Fine-Tuning completed at ")
    record = json.loads((out / "run.json").read_text())
    assert record["state"] == "succeeded" and record["steps"] == steps
    # The first step holds the run's longest batch (fail fast), so no later step is longer.
    assert step_events[0]["seqLen"] == max(e["seqLen"] for e in step_events)
    for e in step_events:
        assert e["memory"]["peakAllocatedBytes"] >= e["memory"]["allocatedBytes"] > 0
        assert e["memory"]["rssBytes"] > 0
    return step_events, summary, record


# QLoRA on tiny Phi-3 is the default run, tested below with its own step count.
@pytest.mark.parametrize("method, model", [("lora", "tiny-phi3"), ("full", "tiny-phi3"), ("lora", "tiny-llama"),
                                           ("qlora", "tiny-llama"), ("full", "tiny-llama")])
def test_twenty_steps(method, model, models, tmp_path):
    out = tmp_path / "out"
    config = write_config(tmp_path / "config.yaml", quant=NF4 if method == "qlora" else None)
    result = run_trainer("--config", str(config), "--model", model, "--output", str(out), "--method", method)
    steps, summary, record = _assert_succeeded(result, out, 20)
    start = result.of("start")[0]
    assert start["method"] == method and start["totalSteps"] == 20
    assert steps[-1]["loss"] < steps[0]["loss"]

    base = _base(models[model], quantized=False)
    weights_fp32 = sum(p.numel() * 4 for p in base.parameters())
    if method == "full":
        from transformers import AutoModelForCausalLM

        assert start["trainableParams"] == start["model"]["params"]
        tuned = AutoModelForCausalLM.from_pretrained(out)
        changed = [n for n, p in tuned.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
        assert len(changed) > 0
        # Full fine-tuning with AdamW keeps weights, grads and two fp32 moments: > 3x the weights.
        assert summary["measuredPeakBytes"] > 3 * weights_fp32
    else:
        assert 0 < start["trainableParams"] < start["model"]["params"] / 5
        _assert_adapter_loads(models[model], out)
        if method == "qlora":
            # 4-bit weights: the measured peak's parameter bytes are far below the fp32 weights.
            assert record["peakBreakdownBytes"]["Parameter"] < 0.6 * weights_fp32


def _base(path, quantized):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _assert_adapter_loads(model_dir, out):
    """The saved adapter loads with peft onto the base model and changes its output."""
    from peft import PeftModel
    from safetensors.torch import load_file

    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in saved.items())
    base = _base(model_dir, quantized=False)
    ids = torch.tensor([[1, 50, 60, 70, 80, 90]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
    tuned = PeftModel.from_pretrained(base, str(out))
    with torch.no_grad():
        after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after)


def test_default_run(models, tmp_path):
    """`python -m headroom_runtime.train --output DIR`: QLoRA (nf4) on tiny Phi-3, loss drops to <= 80%."""
    out = tmp_path / "default"
    result = run_trainer("--output", str(out), "--predicted-peak-bytes", "123456789", timeout=400)
    start = result.of("start")
    assert start and start[0]["method"] == "qlora" and start[0]["predicted"] == {"peakAllocatedBytes": 123456789}
    # The default config asks for bf16: native where this CPU (or HEADROOM_CPU_BF16) says so, else float32.
    expected = "bfloat16" if cpu_has_native_bf16(ENV) else "float32"
    assert start[0]["computeDtype"] == expected
    assert ("computing in float32" in result.stderr) == (expected == "float32")
    total = start[0]["totalSteps"]
    assert 60 <= total <= 100
    steps, summary, record = _assert_succeeded(result, out, total)
    assert summary["lastLoss"] <= 0.8 * summary["firstLoss"], (summary["firstLoss"], summary["lastLoss"])
    assert summary["predictedMaxLengthPeakBytes"] == 123456789 and summary["measuredPeakBytes"] > 0
    assert "predictedPeakBytes" not in summary  # the run's prediction is the supervisor's
    adapter = json.loads((out / "adapter_config.json").read_text())
    # The built-in default trains every linear layer by Phi-3's real (fused) names; lm_head stays frozen.
    assert {t.rsplit(".", 1)[-1] for t in adapter["target_modules"]} == {"down_proj", "gate_up_proj", "o_proj", "qkv_proj"}
    assert adapted_leaves(out) == {"down_proj", "gate_up_proj", "o_proj", "qkv_proj"}
    assert "target_unmatched" not in result.stderr
    _assert_adapter_loads(models["tiny-phi3"], out)


def test_accumulation_checkpointing_8bit_optimizer_eval_and_epoch_saves(models, tmp_path):
    """QLoRA with gradient accumulation, gradient checkpointing, bitsandbytes' 8-bit AdamW,
    an eval split, and save_strategy=epoch (40 rows, 4 a batch, 2 micro-batches a step: 5 steps an epoch)."""
    data = tmp_path / "rows.jsonl"
    from conftest import REPO

    data.write_text("".join((REPO / "examples/data/stdlib-docs.jsonl").read_text().splitlines(keepends=True)[:41]))
    config = write_config(tmp_path / "config.yaml", quant=NF4, gradient_accumulation_steps=2, gradient_checkpointing=True,
                          optim="adamw_8bit", eval_strategy="steps", eval_steps=5, save_strategy="epoch", max_steps=10)
    text = config.read_text().replace("train_test_split: 1", "train_test_split: 0.98")
    config.write_text(text)
    out = tmp_path / "out"
    result = run_trainer("--config", str(config), "--model", "tiny-llama", "--data", str(data), "--output", str(out))
    steps, summary, _ = _assert_succeeded(result, out, 10)
    assert result.of("start")[0]["examples"] == 40
    assert steps[0]["epoch"] == 0.2 and steps[-1]["epoch"] == 2.0
    assert [e["step"] for e in result.of("eval")] == [5, 10]
    assert [(e["step"], e["reason"]) for e in result.of("checkpoint")] == [(5, "save_strategy")]
    assert (out / "checkpoint-5" / "optimizer.pt").is_file()
