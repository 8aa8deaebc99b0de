"""Live tensor storages for the memory benches: every storage an op makes, counted until it is freed.

block_peak.py, block_phases.py, litgpt_fabric_step.py and chunked_head_loop.py run a step under a
TorchDispatchMode and hand each op's output tensors to `LiveStorages.add`; a weakref on the storage
takes it off when autograd or Python drops the last reference. Storages are counted once, however
many views share them (a saved view keeps its whole base alive, and so does this count).
"""
import weakref


class LiveStorages:
    def __init__(self, exclude=()):
        """exclude: tensors whose storages are not the step's (weights, buffers, the batch)."""
        self.bytes = 0
        self._alive: dict[int, tuple] = {}
        self._skip = {id(t.untyped_storage()) for t in exclude}

    def add(self, t, info=None) -> None:
        """Counts t's storage if it is new; info (anything) is kept beside it for snapshots."""
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._alive or key in self._skip:
            return
        try:
            ref = weakref.ref(storage, lambda _, key=key: self._freed(key))
        except TypeError:  # storages that cannot be weakly referenced (none in eager CPU tensors)
            return
        self._alive[key] = (storage.nbytes(), info, ref)
        self.bytes += storage.nbytes()

    def snapshot(self) -> list[tuple]:
        """(nbytes, info) of every storage alive now."""
        return [(nbytes, info) for nbytes, info, _ in self._alive.values()]

    def _freed(self, key: int) -> None:
        entry = self._alive.pop(key, None)
        if entry is not None:
            self.bytes -= entry[0]
