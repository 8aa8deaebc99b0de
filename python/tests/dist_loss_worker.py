"""One rank of test_distributed_loss.py, started by torchrun: trains the same LoRA twice under the
trainer's own wrapper (World.wrap, so _loss.TrainingLoss inside DDP or FSDP2), once with the full
loss and once with the chunked one (a few tokens a chunk, so every row spans several chunks), and
every rank writes each step's loss (the mean over ranks, as the trainer reports it), the adapter
weights before and after (FSDP: gathered from the shards, on rank 0) to --out with its rank
appended (result.pt.0, result.pt.1). Plain SGD, so that the weights move by the gradients
themselves (AdamW's first steps move every weight by about the learning rate whatever its
gradient, which would hide a difference).

    python -m torch.distributed.run --standalone --nproc-per-node 2 python/tests/dist_loss_worker.py \\
        --model DIR --parallelism ddp|fsdp --out result.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = 2
PER_RANK = 2
SEQ = 24
CHUNK_TOKENS = 7  # 2 rows x 24 tokens = 48 per rank: 7 chunks, the last one short


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--parallelism", choices=("ddp", "fsdp"), required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import peft
    import torch
    from transformers import AutoModelForCausalLM

    from headroom_runtime import _loss
    from headroom_runtime._distributed import World

    torch.set_num_threads(1)
    world = World(args.parallelism)
    world.init("cpu")
    vocab = AutoModelForCausalLM.from_pretrained(args.model).config.vocab_size
    # The same global batches on every rank; rank r trains on its slice, as World.shard gives it.
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(STEPS):
        ids = torch.randint(2, vocab, (PER_RANK * world.world_size, SEQ), generator=g)
        mask = torch.ones_like(ids)
        mask[-1, SEQ - 5:] = 0  # a right-padded row, as collate pads
        labels = ids.clone()
        labels[:, :4] = -100  # completion-only
        labels[mask == 0] = -100
        rows = world.shard(list(range(ids.shape[0])))
        batches.append({"input_ids": ids[rows], "attention_mask": mask[rows], "labels": labels[rows]})

    result = {"world_size": world.world_size}
    for implementation in ("full", "chunked"):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        # init_lora_weights=False: lora_B starts non-zero, so lora_A gets a gradient on the first step too.
        model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
        wrapped = world.wrap(model, "cpu", "lora", implementation)
        getattr(wrapped, "module", wrapped).chunk_tokens = CHUNK_TOKENS
        optimizer = torch.optim.SGD([q for q in wrapped.parameters() if q.requires_grad], lr=0.5)
        before = _adapter(world, wrapped)
        losses = []
        for batch in batches:
            value = _loss.loss(wrapped, batch, implementation)
            value.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(world.mean(value.item()))
        result[implementation] = {"losses": losses, "before": before, "lora": _adapter(world, wrapped)}
    torch.save(result, f"{args.out}.{world.rank}")
    world.barrier()
    world.shutdown()
    return 0


def _adapter(world, wrapped) -> dict:
    """The LoRA weights by name: FSDP gathers them (a collective; rank 0 holds the result), DDP's are this rank's."""
    state = world.full_model_state(wrapped)
    if state is None:
        state = world.unwrap(wrapped).state_dict() if world.parallelism != "fsdp" else {}
    return {k: v.detach().clone() for k, v in state.items() if "lora_" in k}


if __name__ == "__main__":
    raise SystemExit(main())
