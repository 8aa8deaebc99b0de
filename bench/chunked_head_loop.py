"""What a chunked head loop holds over the vocabulary, at any size, with torch alone (docs/accuracy.md, sixth round).

PlanPath.chunkedHeadLoop rests on three facts about lit-gpt's loop under Lightning Fabric, measured at Llama-2-7B's
widths with the real Fabric and lit-gpt in bench/litgpt_fabric_step.py. This script reproduces the loop's tensors
without either library, so the suite can check them on every machine: a bf16 head applied in 128-token chunks
(lit-gpt GPT.forward with lm_head_chunk_size=128), each chunk cast with `t.to(torch.get_default_dtype())` after the
forward (Fabric's convert_output, `_convert_fp_tensor`), the last chunk sliced by one token and lit-gpt's
chunked_cross_entropy (reduction="none" per chunk, cat, mean). A TorchDispatchMode counts the live bytes of every
tensor whose last dimension is the vocabulary. Printed as JSON: the bytes when backward starts, when the head's first
backward node runs (after every cast's backward), and the most during backward.

    .venv/bin/python bench/chunked_head_loop.py --tokens 552 --vocab 2048 --hidden 64 --batch 2
"""
import argparse
import json

from live_storages import LiveStorages


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=552)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--chunk", type=int, default=128)
    a = p.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    torch.manual_seed(0)
    # A trainable bf16 projection below a frozen bf16 head: gradients flow through the head, as through lit-gpt's
    # LoRA model whose head is frozen.
    proj = torch.nn.Linear(a.hidden, a.hidden, bias=False, dtype=torch.bfloat16)
    head = torch.nn.Linear(a.hidden, a.vocab, bias=False, dtype=torch.bfloat16).requires_grad_(False)
    x = torch.randn(a.batch, a.tokens, a.hidden, dtype=torch.bfloat16)
    targets = torch.randint(0, a.vocab, (a.batch, a.tokens))

    # The weights' storages are not the loop's (the head's weight, viewed transposed, has the vocabulary last).
    live = LiveStorages(exclude=[proj.weight, head.weight])
    state = {"peak": 0, "casts": False, "head": None}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[-1] == a.vocab:
                    live.add(t)
            node = torch._C._current_autograd_node()
            if node is not None:
                name = type(node).__name__
                if name == "ToCopyBackward0":
                    state["casts"] = True
                elif state["casts"] and state["head"] is None:
                    state["head"] = live.bytes
                state["peak"] = max(state["peak"], live.bytes)
            return out

    def chunked_cross_entropy(logits, targets):
        # lit-gpt 8641822 lit_gpt/utils.py:255-262; its lists are local, so only what autograd saved outlives it.
        chunks = [c.reshape(-1, c.size(-1)) for c in logits]
        target_chunks = [t.reshape(-1) for t in targets.split(logits[0].size(1), dim=1)]
        return torch.cat([F.cross_entropy(c, t, reduction="none") for c, t in zip(chunks, target_chunks)]).mean()

    with Count():
        h = proj(x)
        logits = [head(c) for c in h.split(a.chunk, dim=1)]
        logits = [t.to(torch.get_default_dtype()) for t in logits]  # Fabric's convert_output
        logits[-1] = logits[-1][..., :-1, :]
        loss = chunked_cross_entropy(logits, targets[..., 1:])
        start = live.bytes
        loss.backward()

    logit_elements = a.batch * a.tokens * a.vocab
    print(json.dumps({
        "tokens": a.tokens, "vocab": a.vocab, "batch": a.batch, "chunk": a.chunk, "logitElements": logit_elements,
        "logitsDtype": str(logits[0].dtype),
        "backwardStartBytes": start, "headBackwardBytes": state["head"], "backwardPeakBytes": state["peak"],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
