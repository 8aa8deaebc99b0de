"""Measures the peak live tensor bytes of transformers' generate on CPU, for bench/inference-memory.ts.

    .venv/bin/python bench/inference-memory.py MODEL_DIR '{"dtype": "fp32", "attention": "sdpa",
        "newTokens": 4, "cases": [{"batch": 1, "seq": 128}, ...]}'

With "quant": "nf4" the model loads 4-bit (bitsandbytes NF4 + double quant, compute in `dtype`)
and, with "lora": {"r": 8}, gets a peft LoRA adapter on every Linear (all-linear), served
unmerged as `headroom serve` does.

One JSON line per case on stdout: {batch, seq, promptTokens, newTokens, peakBytes, weightsBytes,
breakdown}. Each case runs one generate call of `batch` prompts of `seq - newTokens` random
token ids (equal length, no padding), greedy, exactly `newTokens` new tokens, so the cache ends
at `seq` tokens per sequence.

How it counts (the trainer's CPU approach, python/headroom_runtime/_memory.py): torch's
MemTracker, a TorchDispatchMode that registers every tensor storage, with the model's
parameters and buffers registered up front, so the peak is of weights + everything generate
allocates (KV cache, block transients, logits). MemTracker refuses a root module's second
forward in one context; generate runs one forward per token, so a StoppingCriteria (called
after every forward) clears the per-module stats between them; the device peak carries on.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, StoppingCriteria, StoppingCriteriaList

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class _NoopHandle:
    def remove(self) -> None:
        pass


class _ResetModuleStats(StoppingCriteria):
    """Never stops generation; lets MemTracker see the next forward as a new iteration."""

    def __init__(self, tracker):
        self.tracker = tracker

    def __call__(self, input_ids, scores, **kwargs):
        self.tracker.reset_mod_stats()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def measure(model, batch: int, seq: int, new_tokens: int, vocab: int, extra_tensors=()) -> dict:
    from torch.distributed._tools.mem_tracker import MemTracker

    prompt = seq - new_tokens
    generator = torch.Generator().manual_seed(batch * 100_003 + seq)
    # Token ids from 2 up: 0 is eos and 1 is pad in the tiny models' tokenizer.
    input_ids = torch.randint(2, vocab, (batch, prompt), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    tracker = MemTracker()
    for p in model.parameters():
        # Frozen parameters: MemTracker's grad hook would raise (research/ecosystem.md §4 A).
        tracker._param_to_grad_hook_handles[p] = (_NoopHandle(), _NoopHandle())
    tracker.track_external(model, *extra_tensors)
    with tracker:
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=1,
            stopping_criteria=StoppingCriteriaList([_ResetModuleStats(tracker)]),
        )
    assert out.shape == (batch, seq), f"generate returned {tuple(out.shape)}, expected {(batch, seq)}"
    snapshot = tracker.get_tracker_snapshot("peak").get(torch.device("cpu"), {})
    breakdown = {str(getattr(k, "value", k)): int(v) for k, v in snapshot.items()}
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(b.numel() * b.element_size() for b in model.buffers())
    weights += sum(t.numel() * t.element_size() for t in extra_tensors)
    return {
        "batch": batch,
        "seq": seq,
        "promptTokens": prompt,
        "newTokens": new_tokens,
        "peakBytes": int(snapshot.get("Total", 0)),
        "weightsBytes": int(weights),
        "breakdown": breakdown,
    }


def main(argv: list[str]) -> int:
    model_dir, spec = argv[1], json.loads(argv[2])
    torch.set_num_threads(1)
    dtype = DTYPES[spec.get("dtype", "fp32")]
    kwargs = {}
    if spec.get("quant") == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=spec.get("attention", "sdpa"), **kwargs)
    if spec.get("lora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=spec["lora"]["r"], lora_alpha=spec["lora"]["r"], target_modules="all-linear", lora_dropout=0.0))
    model.eval()
    model.requires_grad_(False)
    # bitsandbytes keeps absmax/code/offset beside the packed weights, outside parameters and buffers.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from headroom_runtime._memory import quantization_state_tensors

    extra = quantization_state_tensors(model)
    vocab = model.config.vocab_size
    for case in spec["cases"]:
        print(json.dumps(measure(model, case["batch"], case["seq"], spec.get("newTokens", 4), vocab, extra)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
