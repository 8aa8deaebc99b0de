"""Does backward free what a custom autograd Function keeps on its ctx? (docs/accuracy.md, "fifth round")

bitsandbytes 0.41/0.42/0.43 MatMul4Bit.forward keeps its input as `ctx.tensors = (A, B)` (autograd/_functions.py
@0.42.0:522-523), an attribute, not save_for_backward; 0.44.0 keeps `(None, B)`. litgpt's fit() keeps the step's
`logits` until the next forward has returned. This runs the same pattern on CPU with real torch autograd: a stack of
frozen-weight Linears whose Function keeps its input (a) as a ctx attribute, like 0.42, (b) via save_for_backward,
(c) not at all, like 0.44+, and reports after backward, with the step's output still referenced, how many of the
inputs are still alive, and their bytes; then after the output is dropped.

  .venv/bin/python bench/ctx_retention.py [--layers 8] [--tokens 512] [--hidden 256]
"""
import argparse
import json
import weakref

import torch


def make_function(mode):
    class KeepsInput(torch.autograd.Function):
        @staticmethod
        def forward(ctx, A, B):
            out = torch.nn.functional.linear(A, B)
            if mode == "ctx-attribute":
                ctx.tensors = (A, B)  # bitsandbytes 0.42.0 MatMul4Bit
            elif mode == "save-for-backward":
                ctx.save_for_backward(A, B)
            else:
                ctx.tensors = (None, B)  # bitsandbytes 0.44.0+
            ctx.B = B
            return out

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output @ ctx.B, None

    return KeepsInput


def run(mode, layers, tokens, hidden):
    fn = make_function(mode)
    torch.manual_seed(0)
    weights = [torch.randn(hidden, hidden) / hidden**0.5 for _ in range(layers)]
    # A trainable scale up front (the LoRA branch's role): every Linear's input then needs a gradient.
    scale = torch.ones(hidden, requires_grad=True)
    x = torch.randn(tokens, hidden) * scale
    inputs = []
    for w in weights:
        inputs.append(weakref.ref(x))
        x = torch.relu(fn.apply(x, w))
    logits = x  # kept, as litgpt's fit keeps `logits`
    logits.sum().backward()
    alive = [r() for r in inputs if r() is not None]
    after_backward = {"alive": len(alive), "bytes": sum(t.numel() * t.element_size() for t in alive)}
    del alive
    del logits, x
    after_drop = sum(1 for r in inputs if r() is not None)
    return {"mode": mode, "layers": layers, "tokens": tokens, "hidden": hidden,
            "inputBytesEach": tokens * hidden * 4, "afterBackwardOutputKept": after_backward, "aliveAfterOutputDropped": after_drop}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256)
    a = p.parse_args()
    print(json.dumps({"torch": torch.__version__, "rows": [run(m, a.layers, a.tokens, a.hidden) for m in ("ctx-attribute", "save-for-backward", "none")]}, indent=2))


if __name__ == "__main__":
    main()
