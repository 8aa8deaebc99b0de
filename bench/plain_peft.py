"""The baseline for bench/tune-throughput.ts: the same fine-tune as `headroom tune`, written as
the plain transformers + peft loop a user would write by hand, with no telemetry, no events
and no checkpoints. Prints one JSON line: {"tokensPerSecond", "steps", "tokens", "seconds"}.

    .venv/bin/python bench/plain_peft.py --model .headroom/assets/tiny-phi3 \
        --data examples/data/stdlib-docs.jsonl --method qlora --steps 40 --batch 8 --max-length 1024 --dtype bfloat16

--dtype is the compute dtype (the loaded weights and bnb_4bit_compute_dtype), which the caller
sets to what headroom's trainer computes in, so both sides do the same arithmetic. --packing
packs each batch into one row (position_ids per example, no padding), as `headroom tune --packing`.

Throughput counts the non-padding tokens of steps 2..N over the wall-clock time from the end
of step 1 to the end of step N (step 1 warms up the allocator and kernels), batch building
included: the same window bench/tune-throughput.ts reads from headroom's step events.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, get_cosine_schedule_with_warmup



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--method", choices=["lora", "qlora", "full"], default="qlora")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    # headroom's built-in default: every linear layer but lm_head.
    ap.add_argument("--targets", default="all-linear")
    # Padding-free packing as a user would write it with transformers' packed-sequence path: the
    # batch's examples in one row, position_ids restarting per example, no attention_mask.
    ap.add_argument("--packing", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = getattr(torch, args.dtype)
    kwargs = dict(dtype=dtype, device_map="cpu")
    if args.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(args.model, **kwargs)
    model.config.use_cache = False
    if args.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if args.method != "full":
        targets = args.targets if args.targets == "all-linear" else args.targets.split(",")
        model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, target_modules=targets))
    model.train()

    rows = [json.loads(line) for line in open(args.data, encoding="utf-8") if line.strip()]
    examples = [
        tokenizer.apply_chat_template(r["messages"], tokenize=True, truncation=True, max_length=args.max_length, return_dict=False)
        for r in rows
    ]
    examples = [list(e["input_ids"]) if isinstance(e, dict) else list(e) for e in examples]
    random.Random(args.seed).shuffle(examples)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=5, num_training_steps=args.steps)

    timed_tokens, window_start = 0, None
    cursor = 0
    for step in range(1, args.steps + 1):
        if cursor + args.batch > len(examples):
            cursor = 0
        batch = examples[cursor : cursor + args.batch]
        cursor += args.batch
        if args.packing:
            ids = torch.tensor([[t for e in batch for t in e]])
            positions = torch.tensor([[i for e in batch for i in range(len(e))]])
            labels = ids.masked_fill(positions == 0, -100)  # no target across an example boundary
            mask = torch.ones_like(ids)
            loss = model(input_ids=ids, position_ids=positions, labels=labels).loss
        else:
            width = max(len(e) for e in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, e in enumerate(batch):
                ids[i, : len(e)] = torch.tensor(e)
                mask[i, : len(e)] = 1
            labels = ids.masked_fill(mask == 0, -100)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 1:
            window_start = time.perf_counter()
        else:
            timed_tokens += int(mask.sum())
    timed_seconds = time.perf_counter() - window_start
    print(json.dumps({"tokensPerSecond": timed_tokens / timed_seconds, "steps": args.steps, "tokens": timed_tokens, "seconds": timed_seconds, "lastLoss": float(loss.detach())}))


if __name__ == "__main__":
    main()
