"""Padding-free packing (_data.collate_packed): a packed row trains on the same tokens with the
same loss as the padded batch, and no example attends across its boundary."""
from __future__ import annotations

import pytest
import torch

from headroom_runtime import _data, _loss, _packed_attention

EXAMPLES = [
    _data.Example(list(range(5, 5 + 23)), [-100] * 6 + list(range(11, 5 + 23))),  # completion-only: prompt masked
    _data.Example(list(range(40, 40 + 9)), list(range(40, 40 + 9))),
    _data.Example(list(range(90, 90 + 31)), [-100] * 12 + list(range(102, 90 + 31))),
]


def _model(name, models, attention):
    from transformers import AutoModelForCausalLM

    per_example = attention == _packed_attention.NAME
    model = AutoModelForCausalLM.from_pretrained(models[name], dtype=torch.float32, attn_implementation="sdpa" if per_example else attention).eval()
    model.config.use_cache = False  # as the trainer loads it; with a cache transformers ignores packed position_ids
    if per_example:
        assert _packed_attention.eligible(model.config, 1024) is None
        _packed_attention.enable(model)
    return model


ATTENTIONS = ["sdpa", "eager", _packed_attention.NAME]


def test_collate_packed_layout():
    batch = _data.collate_packed(EXAMPLES)
    assert set(batch) == {"input_ids", "position_ids", "labels"}  # no attention_mask: transformers reads position_ids
    n = sum(len(e.input_ids) for e in EXAMPLES)
    assert batch["input_ids"].shape == (1, n) and _data.real_tokens(batch) == n
    assert batch["position_ids"][0].tolist() == list(range(23)) + list(range(9)) + list(range(31))
    labels = batch["labels"][0].tolist()
    # Each example's first label is masked (it would be the previous example's last target), the rest kept.
    assert labels[0] == labels[23] == labels[32] == -100
    assert labels[:23][1:] == EXAMPLES[0].labels[1:] and labels[32:][1:] == EXAMPLES[2].labels[1:]
    padded = _data.collate(EXAMPLES, pad_id=0)
    assert _data.real_tokens(padded) == n and padded["input_ids"].numel() == 3 * 31
    # The same tokens are labelled targets after the shift, packed or padded.
    assert int((_loss.shifted_labels(batch["labels"]) != -100).sum()) == int((_loss.shifted_labels(padded["labels"]) != -100).sum())


@pytest.mark.parametrize("name", ["tiny-phi3", "tiny-llama"])
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("implementation", ["full", "chunked"])
def test_packed_loss_equals_padded_and_per_example(name, attention, implementation, models):
    model = _model(name, models, attention)
    with torch.no_grad():
        packed = _loss.loss(model, _data.collate_packed(EXAMPLES), implementation)
        padded = _loss.loss(model, _data.collate(EXAMPLES, pad_id=0), implementation)
        # Mean over all labelled tokens, from each example alone: sum of per-example sums / count.
        sums, count = 0.0, 0
        for example in EXAMPLES:
            alone = _data.collate([example], pad_id=0)
            n = int((_loss.shifted_labels(alone["labels"]) != -100).sum())
            sums += float(_loss.loss(model, alone, implementation)) * n
            count += n
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)
    assert float(packed) == pytest.approx(sums / count, rel=1e-5)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_no_attention_across_a_boundary(attention, models):
    """Changing example 1's tokens changes nothing in examples 2 and 3's logits; a row that is
    merely concatenated (one sequence of positions) would see them."""
    model = _model("tiny-phi3", models, attention)
    batch = _data.collate_packed(EXAMPLES)
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    changed["input_ids"][0, :23] = 7
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        after = model(input_ids=changed["input_ids"], position_ids=changed["position_ids"]).logits
        alone = model(input_ids=torch.tensor([EXAMPLES[1].input_ids])).logits
        concatenated = model(input_ids=batch["input_ids"]).logits  # positions 0..n-1: one long sequence
    assert not torch.allclose(before[0, :23], after[0, :23])
    torch.testing.assert_close(after[0, 23:], before[0, 23:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(before[0, 23:32], alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(concatenated[0, 23:32], alone[0], atol=1e-3)


@pytest.mark.parametrize("attention", ["sdpa", _packed_attention.NAME])
def test_packed_gradients_equal_padded(attention, models):
    """Training on the packed row moves the weights as the padded batch does."""
    model = _model("tiny-llama", models, attention).train()
    grads = {}
    for kind, batch in (("packed", _data.collate_packed(EXAMPLES)), ("padded", _data.collate(EXAMPLES, pad_id=0))):
        model.zero_grad(set_to_none=True)
        _loss.loss(model, batch, "full").backward()
        grads[kind] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for key, grad in grads["padded"].items():
        torch.testing.assert_close(grads["packed"][key], grad, rtol=1e-4, atol=1e-6)


def test_per_example_attention_finds_the_examples():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    assert _packed_attention._segments(positions) == [(0, 3), (3, 5), (5, 9)]
    assert _packed_attention._segments(torch.arange(6)[None]) == [(0, 6)]


def test_per_example_attention_is_used_only_where_exact():
    from types import SimpleNamespace as C

    assert _packed_attention.eligible(C(_attn_implementation="sdpa", sliding_window=None), 1024) is None
    assert _packed_attention.eligible(C(_attn_implementation="sdpa", sliding_window=262144), 1024) is None
    assert "sliding_window=4096" in _packed_attention.eligible(C(_attn_implementation="sdpa", sliding_window=4096), 8192)
    assert _packed_attention.eligible(C(_attn_implementation="sdpa", sliding_window=4096, use_sliding_window=False), 8192) is None
    assert "eager" in _packed_attention.eligible(C(_attn_implementation="eager"), 1024)
    assert "soft-capped" in _packed_attention.eligible(C(_attn_implementation="sdpa", attn_logit_softcapping=50.0), 1024)
