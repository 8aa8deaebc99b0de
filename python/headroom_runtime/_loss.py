"""The causal-LM loss, computed whole (transformers' ForCausalLMLoss) or in chunks of tokens.

Full: the model's own `outputs.loss`: the lm_head makes batch x seq x vocab logits, the loss
upcasts them to fp32 (transformers loss/loss_utils.py ForCausalLMLoss), and cross_entropy keeps
its fp32 log-softmax for backward: about 12 bytes per logit element alive when backward starts
(src/planner/logits.ts). At 32k tokens of Phi-3-mini (vocab 32,064) that is 12.6 GB.

Chunked: the base model returns the final hidden states (batch x seq x hidden, 3072 wide on
Phi-3-mini, 10x narrower than the vocabulary); the lm_head, logit soft-capping and the
cross-entropy run on CHUNK_TOKENS tokens at a time, each chunk under a non-reentrant
torch.utils.checkpoint so that its logits are dropped after forward and recomputed in
backward (torchtune's CEWithChunkedOutputLoss and Liger's fused linear cross-entropy do the same
job; Liger computes the gradient in forward instead of recomputing). Only one chunk's logits
(and their gradient) are ever alive: CHUNK_TOKENS x vocab x ~12 bytes instead of
batch x seq x vocab x 12. The cost is one extra lm_head matmul per chunk in backward.

Same numbers as transformers: labels shift left by one (position t predicts label t+1), -100 is
ignored, the loss is the sum over the chunks divided by the number of labelled tokens (the
mean over non-ignored tokens, as cross_entropy(reduction="mean") takes it).
"""
from __future__ import annotations

import weakref

import torch
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100
# Tokens per chunk (over batch x seq flattened). At Phi-3-mini's vocabulary one chunk's fp32
# logits are 1024 x 32,064 x 4 B = 131 MB; the planner's chunked-loss term uses the same number.
CHUNK_TOKENS = 1024
IMPLEMENTATIONS = ("full", "chunked")


def causal_lm(model):
    """The *ForCausalLM module under a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def logit_transform(config):
    """What the family's ForCausalLM.forward does to lm_head's output before the loss.

    Of the catalog's families (src/catalog/families) only Gemma 2 changes them
    (final_logit_softcapping: tanh(x / cap) * cap, modeling_gemma2.py); Llama, Mistral, Qwen2
    and Phi-3 pass the logits straight to the loss. Cohere's logit_scale (multiply) and Granite's
    logits_scaling (divide) are handled too so that a model outside the catalog is not silently wrong.
    """
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None) if getattr(config, "model_type", "") in ("cohere", "cohere2") else None
    divide = getattr(config, "logits_scaling", None) if str(getattr(config, "model_type", "")).startswith("granite") else None

    def transform(logits):
        if scale is not None:
            logits = logits * scale
        if divide is not None:
            logits = logits / divide
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return transform


def shifted_labels(labels):
    """labels[:, 1:] with an ignored position appended: the target of every position."""
    return torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


class ChunkedLoss(torch.nn.Module):
    """The chunked loss as a module, not a function, so that torch's MemTracker (the CPU memory
    meter) sees the lm_head's calls nested under one parent: it refuses a top-level module
    called twice in one step, and the head is called once per chunk."""

    def __init__(self, head, transform=None, chunk_tokens: int = CHUNK_TOKENS):
        super().__init__()
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
        self.head, self.transform, self.chunk_tokens = head, transform or (lambda x: x), chunk_tokens

    def _chunk(self, h, y):
        # As ForCausalLM: head, then the family's transform in the head's dtype, then fp32 for the loss.
        logits = self.transform(self.head(h)).float()
        return torch.nn.functional.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")

    def forward(self, hidden, labels):
        flat = hidden.reshape(-1, hidden.shape[-1])
        targets = shifted_labels(labels).reshape(-1).to(flat.device)
        count = (targets != IGNORE_INDEX).sum()
        total = None
        for start in range(0, flat.shape[0], self.chunk_tokens):
            h, y = flat[start:start + self.chunk_tokens], targets[start:start + self.chunk_tokens]
            # Non-reentrant checkpoint: the chunk's logits are freed after forward, recomputed in backward.
            part = checkpoint(self._chunk, h, y, use_reentrant=False) if torch.is_grad_enabled() else self._chunk(h, y)
            total = part if total is None else total + part
        # cross_entropy(reduction="mean") divides by the labelled count; none labelled gives nan, as it does.
        return total / count


def chunked_cross_entropy(hidden, head, labels, transform=None, chunk_tokens: int = CHUNK_TOKENS):
    """Mean causal-LM cross-entropy of head(hidden) against labels, chunk_tokens at a time.

    hidden: batch x seq x hidden (the decoder's last hidden state); head: the lm_head module
    (called per chunk, so a LoRA-adapted or biased head works too); labels: batch x seq, -100
    where no loss is taken.
    """
    return ChunkedLoss(head, transform, chunk_tokens)(hidden, labels)


# One ChunkedLoss per lm_head, alive as long as the head: the meter's backward hooks look the
# module up after forward returns.
_MODULES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class TrainingLoss(torch.nn.Module):
    """The model and its loss as one module: what DDP and FSDP wrap under torchrun.

    The chunked loss calls the decoder and the lm_head itself rather than the model's forward,
    so with the wrapper around the model alone, the wrapper's forward (DDP: preparing the
    gradient all-reduce; FSDP2's root: all-gathering the parameters no decoder layer owns, the
    embedding, final norm and lm_head) would never run. Wrapping this module instead makes the
    loss, whole or chunked, part of the wrapped forward: DDP syncs gradients and FSDP gathers
    and frees shards exactly as with the full loss. (torchtune's recipes do the same: the
    chunked loss runs on the output of the FSDP-wrapped model's forward.)
    """

    def __init__(self, model, implementation: str = "full", chunk_tokens: int = CHUNK_TOKENS):
        super().__init__()
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"loss implementation {implementation!r}: use one of {', '.join(IMPLEMENTATIONS)}")
        self.model, self.implementation, self.chunk_tokens = model, implementation, chunk_tokens

    def forward(self, **batch):
        return _loss(self.model, batch, self.implementation, self.chunk_tokens)


# The prefix TrainingLoss adds to every parameter and state-dict name of the model it holds.
PREFIX = "model."


def loss(model, batch: dict, implementation: str = "full", chunk_tokens: int = CHUNK_TOKENS):
    """The training loss of one batch (input_ids, labels, and attention_mask or position_ids).

    model: the (peft) causal LM, or a TrainingLoss (bare, under DDP's wrapper, or FSDP2's, which
    keeps the class), whose own implementation is then used: the call goes through the wrapper's
    forward."""
    if isinstance(getattr(model, "module", model), TrainingLoss):
        return model(**batch)
    return _loss(model, batch, implementation, chunk_tokens)


def _loss(model, batch: dict, implementation: str, chunk_tokens: int):
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"loss implementation {implementation!r}: use one of {', '.join(IMPLEMENTATIONS)}")
    if implementation == "full":
        # Keep only the loss: holding the output would keep the logits alive through backward.
        # use_cache=False: with a KV cache transformers does not read packed position_ids as
        # example boundaries (masking_utils._preprocess_mask_arguments), and training needs none.
        return model(**batch, use_cache=False).loss
    lm = causal_lm(model)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    decoder = getattr(lm, lm.base_model_prefix)
    hidden = decoder(**inputs, use_cache=False).last_hidden_state
    head = lm.get_output_embeddings()
    module = _MODULES.get(head)
    if module is None or module.chunk_tokens != chunk_tokens:
        module = _MODULES[head] = ChunkedLoss(head, logit_transform(lm.config), chunk_tokens)
    return module(hidden, batch["labels"])
