"""Memory telemetry for the `memory` field of step events.

CUDA: the caching allocator's own counters (memory_allocated, max_memory_allocated,
memory_reserved) and NVML's device-used bytes, read after every step; these are free.

CPU: PyTorch keeps no allocator statistics, so live tensor bytes are counted by torch's
MemTracker (a TorchDispatchMode that tracks every tensor storage; research/ecosystem.md §4).
Dispatching every op through Python costs a fixed ~0.55 s per step on the tiny Phi-3 QLoRA
default (measured: 0.40 s → 0.92 s for a typical batch of 8x109 tokens, 1.02 s → 1.58 s for
the longest, 8x250; one thread), so the tracker runs on the first two steps of the run and
then every `every` steps (default 100); other steps repeat the last measured numbers.
Why two: the first step holds the run's longest batch (fail fast), but the optimizer
creates its state (AdamW: two parameter-sized tensors) inside that step's optimizer.step(),
after backward; only from step 2 on is that state alive through forward and backward, which
is the steady-state peak the planner predicts. The data order puts the longest examples in
both steps (_data.BatchOrder, lead=2 optimizer steps), and peakAllocatedBytes is the max
over all measured steps. (Re-running step 1's batch to measure it again would apply an extra
update, so the trainer doesn't.) That keeps the cost about 4% of a 100-step run (3 measured
steps of ~0.55 s over ~40 s). Weights, buffers, quantization state and optimizer state are
registered with the tracker, so the peak is of the whole step (forward + backward +
optimizer) including the weights. Process RSS (psutil) is read on every step.
"""
from __future__ import annotations

import contextlib
import os

import psutil
from torch.utils.weak import WeakIdKeyDictionary


class _NoopHandle:
    def remove(self) -> None:
        pass


class _FrozenAwareHandles(WeakIdKeyDictionary):
    def get(self, key, default=None):
        found = super().get(key, default)
        if found is None and not key.requires_grad:
            return (_NoopHandle(), _NoopHandle())
        return found


class MemoryMeter:
    def __init__(self, device: str, every: int = 100):
        self.device, self.every = device, every  # every <= 0: never count (CPU peaks then read 0)
        self.peak_bytes = 0      # peak live tensor bytes seen by any measured step
        self.current_bytes = 0   # live tensor bytes after the last measured step
        self.peak_rss_bytes = 0
        self.measured_steps = 0
        self.peak_breakdown: dict[str, int] = {}  # CPU: bytes by MemTracker category at the peak
        self._process = psutil.Process()
        self._tracker = None
        self._nvml = None
        if device == "cuda":
            self._nvml = _nvml_handle()

    def should_measure(self, step: int, first_step: int) -> bool:
        """CPU: the run's first two steps (the second is the first with optimizer state), then
        every `every` steps. CUDA: counters are always on."""
        return self.device == "cpu" and self.every > 0 and (step in (first_step, first_step + 1) or step % self.every == 0)

    @contextlib.contextmanager
    def measure(self, model, optimizer, extra_tensors=()):
        """Counts live tensor bytes through one training step (CPU)."""
        import torch
        from torch.distributed._tools.mem_tracker import MemTracker

        tracker = MemTracker()
        # MemTracker registers a grad hook on every parameter, which raises for frozen ones
        # (every LoRA/QLoRA base weight): answer no-op handles for those (research/ecosystem.md
        # §4 A). A lookup rather than pre-seeding, because FSDP2 swaps in new (all-gathered)
        # parameter objects around each layer's forward.
        tracker._param_to_grad_hook_handles = _FrozenAwareHandles()
        tracker.track_external(model, optimizer, *extra_tensors)
        self._tracker = tracker
        try:
            with tracker:
                yield
        finally:
            self._tracker = None
        device = torch.device("cpu")
        snapshot = tracker.get_tracker_snapshot("peak").get(device, {})
        peak = int(snapshot.get("Total", 0))
        if peak >= self.peak_bytes:
            self.peak_breakdown = {str(getattr(k, "value", k)): int(v) for k, v in snapshot.items()}
        current = int(tracker.get_tracker_snapshot("current").get(device, {}).get("Total", 0))
        self.peak_bytes = max(self.peak_bytes, peak)
        self.current_bytes = current
        self.measured_steps += 1

    def next_micro_batch(self) -> None:
        """Call between micro-batches of one step (gradient accumulation).

        MemTracker refuses a module's second forward within one tracking context; its
        per-module stats are cleared, while the device peak and live bytes carry on.
        """
        if self._tracker is not None:
            self._tracker.reset_mod_stats()

    def sample(self) -> dict:
        """The step event's `memory` object (bytes)."""
        rss = self._process.memory_info().rss
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if self.device == "cuda":
            import torch

            allocated = torch.cuda.memory_allocated()
            self.peak_bytes = torch.cuda.max_memory_allocated()
            return {
                "allocatedBytes": allocated,
                "reservedBytes": torch.cuda.memory_reserved(),
                "peakAllocatedBytes": self.peak_bytes,
                "deviceUsedBytes": self._device_used() or torch.cuda.memory_reserved(),
                "rssBytes": rss,
            }
        return {
            "allocatedBytes": self.current_bytes,
            "reservedBytes": self.current_bytes,
            "peakAllocatedBytes": self.peak_bytes,
            "deviceUsedBytes": rss,
            "rssBytes": rss,
        }

    def _device_used(self) -> int | None:
        if self._nvml is None:
            return None
        import pynvml

        return int(pynvml.nvmlDeviceGetMemoryInfo(self._nvml).used)


def _nvml_handle():
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        index = torch.cuda.current_device()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:  # NVML numbers physical devices; torch numbers visible ones
            index = int(visible.split(",")[index])
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # NVML missing (containers without the driver library): fall back to reserved
        return None


def quantization_state_tensors(model) -> list:
    """Tensors bitsandbytes keeps beside the packed weights (absmax, codes, int8 row scales).

    They are attributes, not parameters or buffers, so the tracker would miss them.
    """
    import torch

    tensors = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        while state is not None:
            for name in ("absmax", "code", "offset"):
                value = getattr(state, name, None)
                if isinstance(value, torch.Tensor):
                    tensors.append(value)
            state = getattr(state, "state2", None)
        scb = getattr(weight, "SCB", None)
        if isinstance(scb, torch.Tensor):
            tensors.append(scb)
    return tensors
