"""The run's training throughput: what the `done` summary's tokensPerSecond reports."""
from __future__ import annotations


class Throughput:
    """Non-padding tokens per second of compute over the steady steps of a run.

    Steady means: after the first step this process ran (it pays one-off costs: allocator
    warm-up, lazy kernels, on a resume the reload) and outside the CPU steps whose memory is
    measured (_memory.py's MemTracker hooks every op; such a step runs several times slower
    and says nothing about training speed, so a short run would mostly report the probe).
    Seconds are each step's own (batch collation to optimizer step), so checkpoints and
    evaluation between steps do not count. When a run has no steady step (one or two steps,
    or every step measured), the best available window is used instead.
    """

    def __init__(self) -> None:
        self._tokens = [0, 0, 0]  # steady steps, later steps incl. measured, every step
        self._seconds = [0.0, 0.0, 0.0]

    def add(self, tokens: int, seconds: float, *, first: bool, measured: bool) -> None:
        windows = (not first and not measured, not first, True)
        for i, inside in enumerate(windows):
            if inside:
                self._tokens[i] += tokens
                self._seconds[i] += seconds

    @property
    def tokens_per_second(self) -> float | None:
        for tokens, seconds in zip(self._tokens, self._seconds):
            if seconds > 0:
                return tokens / seconds
        return None
