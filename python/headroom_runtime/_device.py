"""What this machine can compute natively: the probes behind the trainer's dtype decisions.

The planner's prediction (src/runtime/capability.ts) applies the same rule with the same
environment variable, so a predicted and a measured run always agree on the dtype.
"""
from __future__ import annotations

import os
from pathlib import Path

# '1' forces native bf16 on, '0' forces it off; anything else (or unset) probes the CPU.
# Tests use it to run both the bf16 and the float32 path on any machine.
CPU_BF16_ENV = "HEADROOM_CPU_BF16"
# x86 CPU flags for native bfloat16 matmuls (AVX512-BF16: Cooper Lake and later; AMX-BF16:
# Sapphire Rapids and later), as Linux lists them in /proc/cpuinfo. Without them PyTorch
# emulates bf16 on the CPU, several times slower than float32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(env: dict | None = None, cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bfloat16 natively; e.g. False on a Skylake, True on a Sapphire Rapids.

    HEADROOM_CPU_BF16=1/0 overrides the probe; elsewhere than Linux (no /proc/cpuinfo) it is False.
    """
    forced = (os.environ if env is None else env).get(CPU_BF16_ENV)
    if forced == "1":
        return True
    if forced == "0":
        return False
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in text for flag in BF16_CPU_FLAGS)
