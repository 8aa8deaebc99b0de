"""bench/ctx_retention.py: what backward frees of a custom Function's kept input (docs/accuracy.md, fifth round).

The planner's PlanPath.keepsPreviousStepGraph rests on this: a tensor kept as a ctx attribute (bitsandbytes 0.42's
MatMul4Bit `ctx.tensors = (A, B)`) outlives backward while the step's output is referenced; one kept with
save_for_backward does not. Run through the script as a subprocess, the way the doc runs it.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ctx_attribute_outlives_backward_until_the_output_is_dropped():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ctx_retention.py"), "--layers", "4", "--tokens", "64", "--hidden", "32"],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = {r["mode"]: r for r in json.loads(out)["rows"]}
    each = 64 * 32 * 4
    assert rows["ctx-attribute"]["afterBackwardOutputKept"] == {"alive": 4, "bytes": 4 * each}
    assert rows["save-for-backward"]["afterBackwardOutputKept"] == {"alive": 0, "bytes": 0}
    assert rows["none"]["afterBackwardOutputKept"] == {"alive": 0, "bytes": 0}
    assert all(r["aliveAfterOutputDropped"] == 0 for r in rows.values())
