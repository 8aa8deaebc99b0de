"""lit-gpt 2023's training step under Lightning Fabric's own wrapper: what the head and the loss hold, per logit
(docs/accuracy.md, "sixth round").

bench/litgpt_block_saved.py counted what lit-gpt's blocks save by calling its GPT directly. The resource tables' runs
did not: finetune/lora.py @8641822 wraps the model with `fabric.setup_module` under `--precision bf16-true`, and
Fabric's `_FabricModule.forward` ends with `precision.convert_output(output)`, which casts every floating-point
output to `torch.get_default_dtype()` (lightning @71aed751, the commit lit-gpt 8641822 pins:
src/lightning/fabric/wrappers.py:123 and plugins/precision/half.py:51-52). So the loop's logits are float32, and so
is everything chunked_cross_entropy builds from them.

This runs that step as finetune/lora.py @8641822 does (main :128-148, train :212-220): `L.Fabric(precision=
"bf16-true")`, the LoRA GPT built under `fabric.init_module`, `mark_only_lora_as_trainable`, `fabric.setup_module`,
AdamW through `fabric.setup_optimizers`, `model.max_seq_length = longest` (the rope cache built then, in the default
dtype), then `logits = model(input_ids, lm_head_chunk_size=128)`, the last chunk sliced, `chunked_cross_entropy`,
`fabric.backward`. A TorchDispatchMode counts every tensor storage made during the step until it is freed
(weakref), parameters, buffers and the batch excluded. It reports the live bytes when backward starts, the peak, and
the live bytes when the head's backward starts (after the loss's and the fp32->bf16 casts' backward nodes), with the
logits' share per logit element. CPU: what the Python code and autograd hold; CUDA kernels' workspaces are not here.

Needs lightning 2.1.0 (the release of that commit) importable, and lit-gpt's source:
  pip install --target /tmp/lt --no-deps lightning==2.1.0 lightning-utilities==0.11.2 torchmetrics==1.2.0 "setuptools<70"
  git -C lit-gpt archive 8641822 lit_gpt | tar -x -C /tmp/litgpt2023
  PYTHONPATH=/tmp/lt .venv/bin/python bench/litgpt_fabric_step.py --litgpt-src /tmp/litgpt2023 \\
      --out bench/results/litgpt-fabric-step.json
"""
import argparse
import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from live_storages import LiveStorages


def importable(src: Path) -> Path:
    """A temp copy of lit_gpt whose __init__ skips its pkg_resources check of lightning's pins (fsspec<2025,
    packaging<25 clash with this venv's); nothing else changes, and the real lightning 2.1.0 is what it imports."""
    root = Path(tempfile.mkdtemp(prefix="litgpt2023-fabric-"))
    shutil.copytree(src / "lit_gpt", root / "lit_gpt")
    (root / "lit_gpt" / "__init__.py").write_text("from lit_gpt.model import GPT\nfrom lit_gpt.config import Config\n")
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--litgpt-src", required=True, type=Path)
    p.add_argument("--model", default="Llama-2-7b-hf")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq", type=int, default=1304)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    sys.path.insert(0, str(importable(a.litgpt_src)))

    import lightning as L
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from lit_gpt.lora import GPT, Config, mark_only_lora_as_trainable
    from lit_gpt.utils import chunked_cross_entropy

    torch.manual_seed(0)
    # finetune/lora.py @8641822:60-96: bf16-true, LoRA r 8, alpha 16, dropout 0.05 on query and value.
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="bf16-true")
    config = Config.from_name(a.model, n_layer=a.layers, r=8, alpha=16, dropout=0.05, to_query=True, to_value=True)
    with fabric.init_module(empty_init=False):
        model = GPT(config)
    mark_only_lora_as_trainable(model)
    model = fabric.setup_module(model)
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = fabric.setup_optimizers(torch.optim.AdamW(trainable, lr=3e-4, weight_decay=0.01))
    model.max_seq_length = a.seq  # train() @8641822:177: the longest sample; rebuilds cos/sin in the default dtype
    model.train()
    ids = torch.randint(0, config.vocab_size, (a.batch, a.seq))
    targets = torch.randint(0, config.vocab_size, (a.batch, a.seq))

    live = LiveStorages(exclude=list(model.parameters()) + list(model.buffers()) + [ids, targets])
    state = {"peak": 0, "peakAt": None, "peakSnap": None, "phase": "forward", "head": None, "nodes": []}

    def snap():
        return [(n, *info) for n, info in live.snapshot()]

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            node = torch._C._current_autograd_node()
            name = type(node).__name__ if node is not None else "fw"
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    live.add(t, (f"{state['phase']}:{name}", tuple(t.shape), str(t.dtype)))
            if node is not None and (not state["nodes"] or state["nodes"][-1][0] != name):
                state["nodes"].append([name, live.bytes])
            # The head's backward starts at the first node after the fp32->bf16 casts' (ToCopyBackward0: Fabric's
            # convert_output made them after the forward, so the engine runs them all before any of the head's nodes).
            if node is not None and name == "ToCopyBackward0":
                state["castsSeen"] = True
            elif state["head"] is None and node is not None and state.get("castsSeen"):
                state["head"] = {"node": name, "live": live.bytes, "snap": snap()}
            if live.bytes > state["peak"]:
                state.update(peak=live.bytes, peakAt=f"{state['phase']}:{name}:{func}", peakSnap=snap())
            return out

    with Mode():
        # train() @8641822:216-220
        logits = model(ids, lm_head_chunk_size=128)
        logits[-1] = logits[-1][..., :-1, :]
        loss = chunked_cross_entropy(logits, targets[..., 1:])
        start = {"live": live.bytes, "snap": snap()}
        state["phase"] = "backward"
        fabric.backward(loss)

    logit_elems = a.batch * a.seq * config.padded_vocab_size
    vocab = config.padded_vocab_size

    def summarise(live, snap):
        groups = defaultdict(lambda: [0, 0])
        for nbytes, where, shape, dtype in snap:
            g = groups[(where, shape, dtype)]
            g[0] += nbytes
            g[1] += 1
        top = sorted(groups.items(), key=lambda kv: -kv[1][0])
        by_vocab = sum(n for n, _w, shape, _d in snap if shape and shape[-1] == vocab)
        return {
            "liveBytes": live,
            "vocabShapedBytes": by_vocab,
            "vocabShapedBytesPerLogit": round(by_vocab / logit_elems, 4),
            "otherBytes": live - by_vocab,
            "groups": [{"where": w, "shape": list(s), "dtype": d, "bytes": n, "count": c} for (w, s, d), (n, c) in top[:25]],
        }

    out = {
        "torch": torch.__version__, "lightning": L.__version__, "model": a.model, "layers": a.layers, "batch": a.batch,
        "seq": a.seq, "vocab": vocab, "logitsDtype": str(logits[0].dtype), "logitElements": logit_elems,
        "backwardStart": summarise(start["live"], start["snap"]),
        "headBackward": {"node": state["head"]["node"], **summarise(state["head"]["live"], state["head"]["snap"])} if state["head"] else None,
        "peak": {"at": state["peakAt"], **summarise(state["peak"], state["peakSnap"])},
        "backwardNodes": state["nodes"][:40],
    }
    text = json.dumps(out, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(json.dumps({k: out[k] for k in ("logitsDtype", "logitElements")} | {
        m: {k: out[m][k] for k in ("liveBytes", "vocabShapedBytes", "vocabShapedBytesPerLogit", "otherBytes")}
        for m in ("backwardStart", "headBackward", "peak") if out[m]} | {"peakAt": out["peak"]["at"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
