"""lit-gpt 2023's own decoder block at real widths: the bytes it saves for backward, per token (docs/accuracy.md,
"fifth round", lead e).

Runs lit-gpt's LoRA GPT (commit 8641822, the resource tables' code) with `--layers` blocks at a catalog model's real
widths, bf16, LoRA on query and value (r 8, alpha 16, dropout 0.05, lit-gpt finetune/lora.py's defaults), only the
LoRA weights trainable (mark_only_lora_as_trainable), and counts, through torch.autograd.graph.saved_tensors_hooks,
every tensor storage autograd saves, attributed to the block whose forward saved it first (parameters and buffers
excluded). CPU only: it measures what the Python code saves, not CUDA kernels' own choices.

The lit-gpt source is not vendored. Extract it from a clone and stub its two Lightning imports:
  git -C lit-gpt archive 8641822 lit_gpt | tar -x -C /tmp/litgpt2023
  .venv/bin/python bench/litgpt_block_saved.py --litgpt-src /tmp/litgpt2023 [--model Llama-2-7b-hf --layers 2 --seq 1304]
(the script stubs lightning_utilities and drops lit_gpt/utils.py's `lightning` imports itself, in its own temp copy).
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch


def prepare_source(src: Path) -> Path:
    """A temp copy of lit_gpt importable without lightning: nothing it runs here uses it."""
    root = Path(tempfile.mkdtemp(prefix="litgpt2023-"))
    shutil.copytree(src / "lit_gpt", root / "lit_gpt")
    (root / "lit_gpt" / "__init__.py").write_text("from lit_gpt.model import GPT\nfrom lit_gpt.config import Config\n")
    utils = root / "lit_gpt" / "utils.py"
    lines = [ln for ln in utils.read_text().splitlines() if not ln.startswith(("import lightning", "from lightning"))]
    utils.write_text("from __future__ import annotations\n" + "\n".join(lines) + "\n")
    stub = root / "lightning_utilities" / "core"
    stub.mkdir(parents=True)
    (root / "lightning_utilities" / "__init__.py").write_text("")
    (stub / "__init__.py").write_text("")
    # flash-attn is not installed here: lit-gpt then calls torch's scaled_dot_product_attention.
    (stub / "imports.py").write_text(
        "class RequirementCache:\n    def __init__(self, *a, **k): pass\n    def __bool__(self): return False\n"
    )
    return root


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--litgpt-src", required=True, type=Path)
    p.add_argument("--model", default="Llama-2-7b-hf")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq", type=int, default=1304)
    p.add_argument("--head", action="store_true", help="also run the head in 128-token chunks and chunked_cross_entropy, as lit-gpt's finetune/lora.py does, but on "
                   "the GPT called directly: without Fabric's fp32 cast of the logits (bench/litgpt_fabric_step.py has it)")
    a = p.parse_args()
    sys.path.insert(0, str(prepare_source(a.litgpt_src)))
    import lit_gpt.lora as lora

    torch.manual_seed(0)
    config = lora.Config.from_name(a.model, n_layer=a.layers, r=8, alpha=16, dropout=0.05, to_query=True, to_value=True)
    torch.set_default_dtype(torch.bfloat16)  # lit-gpt --precision bf16-true: the whole model in bf16
    model = lora.GPT(config)
    lora.mark_only_lora_as_trainable(model)
    model.train()
    fixed = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    where = {"now": "embed"}
    for i, block in enumerate(model.transformer.h):
        block.register_forward_pre_hook(lambda m, args, i=i: where.__setitem__("now", f"block{i}"))
    model.transformer.ln_f.register_forward_pre_hook(lambda m, args: where.__setitem__("now", "final"))
    saved = {}

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in fixed and ptr not in saved:
            saved[ptr] = (where["now"], st.nbytes(), str(t.dtype), list(t.shape), t.grad_fn.name() if t.grad_fn else None)
        return t

    idx = torch.randint(0, config.vocab_size, (1, a.seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x = model.transformer.wte(idx)
        cos, sin = model.cos[: a.seq], model.sin[: a.seq]
        for block in model.transformer.h:
            x = block(x, cos, sin, None, None)
        where["now"] = "final"
        x = model.transformer.ln_f(x)
        if a.head:
            from lit_gpt.utils import chunked_cross_entropy

            where["now"] = "head+loss"
            # finetune/lora.py @8641822:216-219
            logits = [model.lm_head(x_i) for x_i in x.split(128, dim=1)]
            logits[-1] = logits[-1][..., :-1, :]
            chunked_cross_entropy(logits, torch.randint(0, config.vocab_size, (1, a.seq - 1)))
    per_block = {}
    for w, n, dtype, shape, fn in saved.values():
        per_block.setdefault(w, {"bytes": 0, "tensors": []})
        per_block[w]["bytes"] += n
        per_block[w]["tensors"].append({"bytes": n, "dtype": dtype, "shape": shape, "madeBy": fn})
    out = {
        "torch": torch.__version__, "model": a.model, "layers": a.layers, "seq": a.seq,
        "hidden": config.n_embd, "intermediate": config.intermediate_size,
        "bytesPerToken": {w: v["bytes"] / a.seq for w, v in per_block.items()},
        "vocab": config.padded_vocab_size,
        "blocks": per_block,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
