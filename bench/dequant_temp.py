"""The dequantized-weight temporary of one bitsandbytes 4-bit Linear, measured on CPU.

A Phi-3-mini gate_up_proj (3,072 -> 16,384, the block's largest Linear) as nf4 + double quant
with bf16 compute, an fp32 input of 2,048 tokens (peft's prepared stream), one forward and one
backward. Measured by the process's resident-memory high-water mark (VmHWM, reset through
/proc/self/clear_refs before each phase; Linux), so it also sees what happens inside
bitsandbytes' own ops. Prints each phase's transient beside the tensors that explain it and
the planner's `dequantBytes` (largest in*out x compute-dtype bytes). Used by docs/accuracy.md.

    .venv/bin/python bench/dequant_temp.py
"""
import gc
import json

import psutil
import torch

import bitsandbytes as bnb


def high_water() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_high_water() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    torch.manual_seed(0)
    tokens, d_in, d_out = 2048, 3072, 16384
    proc = psutil.Process()
    layer = bnb.nn.Linear4bit(d_in, d_out, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4", compress_statistics=True)
    weight = bnb.nn.Params4bit(torch.randn(d_out, d_in, dtype=torch.bfloat16) * 0.02, requires_grad=False, quant_type="nf4", compress_statistics=True)
    layer.weight = weight._quantize("cpu")
    layer(torch.randn(4, d_in, requires_grad=True)).sum().backward()  # load kernels before measuring
    x = torch.randn(tokens, d_in, requires_grad=True)
    gc.collect()

    reset_high_water()
    before = proc.memory_info().rss
    y = layer(x)
    forward_transient = high_water() - proc.memory_info().rss
    grad = torch.ones_like(y)
    gc.collect()
    reset_high_water()
    before_backward = proc.memory_info().rss
    y.backward(grad)
    backward_peak = high_water() - before_backward
    print(json.dumps({
        "outputDtype": str(y.dtype),
        "forwardPeakAboveAfterBytes": forward_transient,
        "forwardOutputInComputeDtypeBytes": tokens * d_out * 2,
        "backwardPeakAboveBeforeBytes": backward_peak,
        "backwardGradInComputeDtypeBytes": tokens * d_out * 2,
        "dequantizedWeightBytes": d_in * d_out * 2,
        "plannedDequantBytes": d_in * d_out * 2,
        "forwardRssGrowthBytes": proc.memory_info().rss - before,
    }))


if __name__ == "__main__":
    main()
