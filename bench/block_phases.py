"""Live tensor bytes op by op through one training step, to see which buffers are alive together.

The figures in docs/accuracy.md, "Checkpointed block backward": a TorchDispatchMode counts every
new tensor storage an op returns and drops it when the storage is freed (weakref), labelled with
the autograd node running (torch._C._current_autograd_node(); "fw" in the forward) and the
innermost module whose forward is running (so a checkpoint's recompute shows under the node that
unpacked it). The model is loaded and prepared as bench/memory_step.py does (the trainer's way);
one warm step first, so AdamW's state exists. Storages that already existed (weights) are counted
when an op first returns a view of them, so read differences between moments, not absolutes.

    .venv/bin/python bench/block_phases.py --model .headroom/assets/tiny-phi3 --method qlora --seq 512 --gc \\
        --out /tmp/phases.json

Prints the peak, the op and place it was reached, and the largest live tensors then; --out writes
[live bytes, op, node@module] per op for the whole step.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from live_storages import LiveStorages  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model directory (a tiny asset, or memory_step.py's cache)")
    p.add_argument("--method", choices=("lora", "qlora"), default="qlora")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--gc", action="store_true", help="non-reentrant gradient checkpointing, as the trainer sets it")
    p.add_argument("--attention", default="eager")
    p.add_argument("--out", help="write the per-op timeline here (JSON)")
    args = p.parse_args(argv)

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    import memory_step as ms

    torch.manual_seed(0)
    cfg = {"method": args.method, "seq": args.seq, "gc": args.gc, "attention": args.attention}
    model = ms.prepare(ms.load(Path(args.model), args.method, "cpu", args.attention), args.method, cfg)
    ms.set_mode(model, cfg)
    model.train()
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (1, args.seq))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    del loss
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    stack = ["-"]

    def entered(name: str):
        def hook(module, *_):
            stack.append(name)  # a hook returning a value would replace the input
        return hook

    def left(name: str):
        def hook(module, *_):
            if stack[-1] == name:
                stack.pop()  # returning it would replace the module's output
        return hook

    for name, module in model.named_modules():
        short = name.replace("base_model.model.model.", "") or "root"
        module.register_forward_pre_hook(entered(short))
        module.register_forward_hook(left(short))

    live = LiveStorages()
    state = {"peak": 0, "at": None, "snapshot": []}
    timeline: list = []

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            node = torch._C._current_autograd_node()
            where = f"{type(node).__name__ if node is not None else 'fw'}@{stack[-1]}"
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    live.add(t, (str(func), where, tuple(t.shape), str(t.dtype)))
            timeline.append((live.bytes, str(func), where))
            if live.bytes > state["peak"]:
                state.update(peak=live.bytes, at=(str(func), where))
                state["snapshot"] = sorted(((n, *info) for n, info in live.snapshot()), reverse=True)[:20]
            return out

    with Mode():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        del loss
    print(json.dumps({"seq": args.seq, "gc": args.gc, "method": args.method, "peakBytes": state["peak"], "at": state["at"]}))
    for entry in state["snapshot"]:
        print(json.dumps(entry))
    if args.out:
        Path(args.out).write_text(json.dumps(timeline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
