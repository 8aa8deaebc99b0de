"""The planner's referee: two training steps of the real model code on fake tensors.

Builds the model from its config on the meta device (no weights, any size), attaches LoRA
with peft, moves it to fake CPU tensors, runs two steps of forward + backward + fused AdamW step
(the trainer's default optim; the second step is the first with optimizer state alive through
backward, as the trainer measures) under torch's MemTracker, and prints the peak of live tensor
bytes by category as JSON. Exact for what
PyTorch allocates; blind to the CUDA context, allocator slack and kernel workspaces, which
the planner adds (research/ecosystem.md §4).

    python -m headroom_runtime.trace --model default|DIR|config.json --method lora|full
        [--batch 1] [--seq 256] [--rank 8] [--alpha 8] [--targets all-linear|q_proj,v_proj]
        [--dtype float32|bfloat16|float16] [--grad-checkpointing] [--attention sdpa|eager]
        [--loss full|chunked] [--chunk-tokens 1024]

--loss chunked computes the loss as the trainer's `--loss chunked` does (_loss.py): from the
final hidden states, CHUNK_TOKENS tokens of logits at a time, recomputed in backward.

QLoRA is not traced: bitsandbytes quantizes weights while loading real tensors, which fake
tensors do not have; the planner's analytic 4-bit weight term covers it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m headroom_runtime.trace", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--method", choices=("lora", "full"), default="lora")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=8)
    p.add_argument("--targets", default="all-linear")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--attention", choices=("sdpa", "eager"), default="sdpa")
    p.add_argument("--loss", choices=("full", "chunked"), default="full")
    p.add_argument("--chunk-tokens", type=int, default=None, help="tokens per chunk for --loss chunked (default: the trainer's)")
    return p.parse_args(argv)


class _NoopHandle:
    def remove(self) -> None:
        pass


def trace(args) -> dict:
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker
    from transformers import AutoConfig, AutoModelForCausalLM

    from . import _loss, assets

    ref = str(assets.ensure("tiny-phi3" if args.model == "default" else args.model)) if args.model in ("default", "tiny-phi3", "tiny-llama") else args.model
    source = Path(ref)
    config = AutoConfig.from_pretrained(source.parent if source.name == "config.json" else ref)
    config.use_cache = False
    dtype = getattr(torch, args.dtype)

    # 1) Build and attach LoRA on meta: no memory; peft cannot inject under FakeTensorMode
    #    (ecosystem.md §4 B), so fake tensors come after.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=args.attention)
        if args.grad_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if args.method == "lora":
            import peft

            targets = args.targets if args.targets == "all-linear" else args.targets.split(",")
            model = peft.get_peft_model(model, peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=targets))
    chunk_tokens = args.chunk_tokens or _loss.CHUNK_TOKENS
    # transformers (masking_utils.find_packed_sequence_indices) looks for packed sequences in the position ids and,
    # on a fake tensor (is_tracing covers FakeTensor), cannot read them, so it reports packing and materializes a
    # [b, 1, s, s] bool mask, which sdpa then turns into a 16-bit additive copy inside every attention: 3 B per
    # token x sequence that a real run of these rows (one unpacked sequence each, no padding) never allocates
    # (bench/block_peak.py, real vs --fake at seq 2048: 311,920 vs 318,064 B/token). The real check's answer here is None.
    # Patched for the trace only: a process that traces and then trains packed rows (the tests) needs the real check back.
    from unittest import mock

    import transformers.masking_utils as masking_utils

    began = time.perf_counter()
    with mock.patch.object(masking_utils, "find_packed_sequence_indices", lambda position_ids: None), FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to_empty(device="cpu")
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        # TrainingArguments' default optim in transformers 5 is adamw_torch_fused; the trainer builds it so.
        optimizer = torch.optim.AdamW(trainable, fused=True)
        ids = torch.randint(0, config.vocab_size, (args.batch, args.seq))

        def step():
            # The trainer's own loss call (train.py), so the trace measures what a run allocates.
            _loss.loss(model, {"input_ids": ids, "labels": ids}, args.loss, chunk_tokens).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        tracker = MemTracker()
        # Frozen parameters would make MemTracker's grad hooks raise (ecosystem.md §4 A).
        for p in model.parameters():
            if not p.requires_grad:
                tracker._param_to_grad_hook_handles[p] = (_NoopHandle(), _NoopHandle())
        tracker.track_external(model, optimizer, ids)
        with tracker:
            step()  # the first step: AdamW's states are created inside it, as in a real run
            tracker.reset_mod_stats()  # MemTracker refuses a module's second forward otherwise; the peak carries on
            step()  # the second: forward and backward with the states alive (the steady-state peak, _memory.py)
    peak = tracker.get_tracker_snapshot("peak").get(torch.device("cpu"), {})
    return {
        "model": ref, "method": args.method, "batch": args.batch, "seq": args.seq, "dtype": args.dtype,
        "gradientCheckpointing": args.grad_checkpointing, "attention": args.attention,
        "loss": args.loss, "chunkTokens": chunk_tokens if args.loss == "chunked" else None,
        "params": sum(p.numel() for p in model.parameters()), "trainableParams": sum(p.numel() for p in trainable),
        "peakAllocatedBytes": int(peak.get("Total", 0)),
        "breakdown": {str(getattr(k, "value", k)): int(v) for k, v in peak.items() if str(getattr(k, "value", k)) != "Total"},
        "seconds": round(time.perf_counter() - began, 3),
    }


def main(argv=None) -> int:
    print(json.dumps(trace(parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
