"""What is alive at a training step's peak, tensor by tensor, at a real model's widths.

The planner's referee (python -m headroom_runtime.trace) gives exact peaks by MemTracker category
but not which tensors make them. This builds the same model (a config.json, e.g. Phi-3-mini's,
with --layers to keep only a few decoder blocks: the block-backward phase does not depend on
the count), attaches LoRA as trace.py does, and runs one step of the trainer's loss (_loss.loss,
--loss full|chunked) on real CPU tensors under a TorchDispatchMode that counts every new tensor
storage until it is freed (weakref). Weights, buffers and the input ids are excluded, so the
live bytes are activations, gradients and optimizer state only. Prints the peak, the op and the
autograd node / module it was reached in, and every live tensor then (grouped by op, place,
shape and dtype), as JSON lines; --at-module also snapshots the highest moment inside that
module's backward (e.g. the last block, "layers.1").

    .venv/bin/python bench/block_peak.py --model /tmp/phi3/config.json --layers 2 --seq 2048 --loss chunked
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from live_storages import LiveStorages  # noqa: E402 (bench/ is the script's own directory)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a config.json")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--attention", default="sdpa")
    p.add_argument("--loss", choices=("full", "chunked"), default="chunked")
    p.add_argument("--no-gc", action="store_true")
    p.add_argument("--fake", action="store_true", help="fake tensors, as trace.py runs (no compute: any length in seconds)")
    args = p.parse_args(argv)

    import peft
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from transformers import AutoConfig, AutoModelForCausalLM

    from headroom_runtime import _loss

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(Path(args.model).parent)
    config.use_cache = False
    config.num_hidden_layers = args.layers
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype), attn_implementation=args.attention)
        if not args.no_gc:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model = peft.get_peft_model(model, peft.LoraConfig(r=args.rank, lora_alpha=args.rank, target_modules="all-linear"))
    if args.fake:
        from torch._subclasses.fake_tensor import FakeTensorMode

        fake = FakeTensorMode(allow_non_fake_inputs=True)
        fake.__enter__()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for q in model.parameters():
            q.normal_(0, 0.02)
        for name, b in model.named_buffers():
            if "inv_freq" in name:
                dim = b.numel() * 2
                b.copy_(1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)))
    model.train()
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(trainable, fused=True)
    ids = torch.randint(0, config.vocab_size, (1, args.seq))

    def step():
        _loss.loss(model, {"input_ids": ids, "labels": ids}, args.loss, _loss.CHUNK_TOKENS).backward()

    step()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    stack = ["-"]

    def entered(name):
        def hook(module, *_):
            stack.append(name)
        return hook

    def left(name):
        def hook(module, *_):
            if stack[-1] == name:
                stack.pop()
        return hook

    for name, module in model.named_modules():
        short = name.replace("base_model.model.model.", "").replace("base_model.model.", "") or "root"
        module.register_forward_pre_hook(entered(short))
        module.register_forward_hook(left(short))

    live = LiveStorages(exclude=list(model.parameters()) + list(model.buffers()) + [ids] + [
        v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)])
    state = {"peak": 0, "at": None, "snap": None, "n": 0, "blocks": False, "bpeak": 0, "bat": None, "bsnap": None}

    def snap():
        return [(n, *info) for n, info in live.snapshot()]

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):
            out = func(*a, **(kw or {}))
            node = torch._C._current_autograd_node()
            where = f"{type(node).__name__ if node is not None else 'fw'}@{stack[-1]}"
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    live.add(t, (str(func), where, tuple(t.shape), str(t.dtype)))
            state["n"] += 1
            # From the first block recompute in backward on, the blocks' backward phase (the loss's is over).
            if node is not None and stack[-1].startswith("layers."):
                state["blocks"] = True
            if state["blocks"] and live.bytes > state["bpeak"]:
                state.update(bpeak=live.bytes, bat=(state["n"], str(func), where), bsnap=snap())
            if live.bytes > state["peak"]:
                state.update(peak=live.bytes, at=(state["n"], str(func), where), snap=snap())
            return out

    with Mode():
        step()
    tokens = args.seq
    print(json.dumps({"seq": args.seq, "layers": args.layers, "loss": args.loss, "peakBytes": state["peak"],
                      "peakPerToken": state["peak"] / tokens, "at": state["at"]}))
    report("peak", state["peak"], state["at"], state["snap"], tokens)
    report("blockBackwardPeak", state["bpeak"], state["bat"], state["bsnap"], tokens)
    return 0


def report(label, peak, at, snap, tokens):
    print(json.dumps({"moment": label, "bytes": peak, "perToken": peak / tokens, "at": at}))
    groups = defaultdict(lambda: [0, 0])
    for nbytes, op, where, shape, dtype in snap:
        g = groups[(op, where, shape, dtype)]
        g[0] += nbytes
        g[1] += 1
    for (op, where, shape, dtype), (nbytes, count) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(json.dumps({"bytes": nbytes, "perToken": round(nbytes / tokens, 1), "count": count, "op": op, "where": where, "shape": shape, "dtype": dtype}))


if __name__ == "__main__":
    raise SystemExit(main())
