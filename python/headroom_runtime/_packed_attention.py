"""Attention for packed rows without the row-sized mask: one causal sdpa call per example.

With packing (_data.collate_packed) transformers builds, for sdpa and eager, a dense
block-diagonal causal mask over the whole row (masking_utils.find_packed_sequence_indices), and
attention then costs row_length² per head: for the default CPU run (8 examples of ~110 tokens in
a ~900-token row) about 1.6x the attention work of the padded batch it replaces, which eats most
of what packing saves (measured: 1.06x tokens/s instead of the ~1.5x that the 35% of padding
allows; docs/accuracy.md). flash_attention_2 avoids this with varlen kernels (cu_seq_lens from
position_ids); this is the same idea for sdpa, on any device: the row's examples are found
from the restarts of position_ids, and each gets its own causal sdpa call, so attention costs
Σ example_length², never more than the padded batch, and no mask is built (transformers skips
mask creation for an attention implementation it has no mask function for).

Exact: the same softmax over the same keys as the block-diagonal mask (tests/test_packing.py).
Used only where it is: sdpa requested, no sliding window shorter than the longest row (a window
needs the mask), no attention logit soft-capping (Gemma 2, which needs eager anyway).
"""
from __future__ import annotations

import torch

NAME = "headroom_packed_sdpa"


def _segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) of each example in a packed row: a new example wherever the position does not follow on."""
    pos = position_ids.reshape(-1)
    starts = [0] + (torch.nonzero(pos[1:] != pos[:-1] + 1).reshape(-1) + 1).tolist()
    return list(zip(starts, starts[1:] + [pos.numel()]))


def packed_sdpa_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """An AttentionInterface function: query/key/value are batch x heads x seq x head_dim."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.pop("position_ids", None)
    kwargs.pop("is_causal", None)
    segments = _segments(position_ids) if position_ids is not None and query.shape[0] == 1 and attention_mask is None else None
    if segments is None or len(segments) == 1:
        # Not a packed row (eval's right-padded batches; one example): plain causal sdpa. Right
        # padding needs no mask under causal attention: no real token sees a later pad.
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    outputs = [
        sdpa_attention_forward(module, query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], None,
                               dropout=dropout, scaling=scaling, is_causal=True, **kwargs)[0]
        for s, e in segments
    ]
    return torch.cat(outputs, dim=1), None  # batch x seq x heads x head_dim, as sdpa_attention_forward returns


def eligible(config, max_length: int) -> str | None:
    """None when per-example sdpa is exact for this model, else why not."""
    impl = getattr(config, "_attn_implementation", None)
    if impl != "sdpa":
        return f"attention is {impl}, not sdpa"
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True) is not False and window < max_length:
        return f"sliding_window={window} is shorter than max_length={max_length}"
    if getattr(config, "attn_logit_softcapping", None):
        return "attention logits are soft-capped"
    return None


def enable(model) -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, packed_sdpa_forward)
    model.set_attn_implementation(NAME)
