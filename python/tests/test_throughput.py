"""The run summary's tokensPerSecond: which steps count (python/headroom_runtime/_throughput.py)."""
from headroom_runtime._throughput import Throughput


def test_steady_steps_only():
    t = Throughput()
    t.add(1000, 2.0, first=True, measured=True)     # warm-up, and measured
    t.add(1000, 5.0, first=False, measured=True)    # step 2: the memory probe's step
    t.add(300, 0.1, first=False, measured=False)
    t.add(500, 0.15, first=False, measured=False)
    assert t.tokens_per_second == 800 / 0.25


def test_falls_back_when_no_step_is_steady():
    assert Throughput().tokens_per_second is None
    one = Throughput()
    one.add(400, 0.5, first=True, measured=True)
    assert one.tokens_per_second == 800
    two = Throughput()
    two.add(400, 0.5, first=True, measured=True)
    two.add(600, 2.0, first=False, measured=True)
    assert two.tokens_per_second == 300
