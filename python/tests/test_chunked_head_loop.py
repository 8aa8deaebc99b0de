"""bench/chunked_head_loop.py: what lit-gpt's chunked head loop under Fabric holds over the vocabulary (docs/accuracy.md,
sixth round). The planner's PlanPath.chunkedHeadLoop uses these three figures; the same script at Llama-2-7B's
1,304 tokens x 32,000 gives the bytes the real Fabric 2.1.0 + lit-gpt 8641822 run measured
(bench/results/litgpt-fabric-step.json: 333,696,000, 250,368,000 and 366,464,000). Run as a subprocess, as the doc does.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(**kw):
    args = [x for k, v in kw.items() for x in (f"--{k}", str(v))]
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "chunked_head_loop.py"), *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("batch,tokens", [(1, 552), (2, 300)])
def test_float32_logits_and_log_softmax_then_stream_dtype_gradients(batch, tokens):
    vocab = 2048
    r = run(batch=batch, tokens=tokens, vocab=vocab, hidden=32)
    assert r["logitsDtype"] == "torch.float32"
    held = 4 * batch * tokens * vocab
    # log_softmax's fp32 output for every position but the last (the loop slices it off before the loss)
    saved = 4 * batch * (tokens - 1) * vocab
    assert r["backwardStartBytes"] == held + saved
    # One 128-token chunk's incoming and outgoing fp32 gradients on top, inside its LogSoftmaxBackward.
    assert r["backwardPeakBytes"] == held + saved + 2 * 4 * batch * 128 * vocab
    # Every cast's backward runs before the head's: the held logits and all chunks' gradients, back in bf16.
    assert r["headBackwardBytes"] == held + 2 * batch * tokens * vocab
