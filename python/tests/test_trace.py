"""trace.py (one fake-tensor training step) agrees with a real CPU step's measured peak."""
from headroom_runtime import trace

from conftest import run_trainer, write_config


def test_fake_step_matches_the_real_peak(models, tmp_path):
    config = write_config(tmp_path / "config.yaml", max_steps=1)
    out = tmp_path / "out"
    real = run_trainer("--config", str(config), "--model", "tiny-llama", "--output", str(out), "--method", "lora")
    assert real.rc == 0, real.stderr[-3000:]
    measured = real.done()["measuredPeakBytes"]
    seq = real.of("step")[0]["seqLen"]
    traced = trace.trace(trace.parse_args(["--model", "tiny-llama", "--method", "lora", "--batch", "4", "--seq", str(seq),
                                           "--rank", "8", "--alpha", "16"]))
    assert traced["trainableParams"] == real.of("start")[0]["trainableParams"]
    assert abs(traced["peakAllocatedBytes"] - measured) / measured < 0.05, (traced, measured)
