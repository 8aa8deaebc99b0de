"""The trainer's memory and throughput levers through its CLI (python -m headroom_runtime.train):
--loss chunked, --packing, --offload-activations and their TrainingArguments keys."""
from __future__ import annotations

import pytest

from conftest import check_schema, run_trainer, write_config
from headroom_runtime import _offload


@pytest.fixture(scope="module")
def runs(tmp_path_factory, models):
    """Three short runs on the same data and seed: the plain one, chunked loss, packed."""
    out = {}
    base = tmp_path_factory.mktemp("levers")
    config = write_config(base / "config.yaml", max_steps=3)
    for name, flags in (("plain", []), ("chunked", ["--loss", "chunked"]), ("packed", ["--packing", "--offload-activations"])):
        out[name] = run_trainer("--config", str(config), "--model", str(models["tiny-phi3"]), "--output", str(base / name),
                                "--device", "cpu", "--memory-every", "0", *flags)
        assert out[name].rc == 0, out[name].stderr[-3000:]
    return out


def _steps(result):
    return result.of("step")


def test_chunked_loss_trains_the_same_steps(runs):
    plain, chunked = runs["plain"], runs["chunked"]
    assert chunked.of("start")[0]["levers"]["loss"] == "chunked"
    assert plain.of("start")[0]["levers"]["loss"] == "full"
    assert chunked.of("start")[0]["config"]["TrainingArguments"]["loss_implementation"] == "chunked"
    # Same loss at every step, so the same updates: chunking changes memory, not the numbers.
    for a, b in zip(_steps(plain), _steps(chunked), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["tokens"] == a["tokens"]
    check_schema(chunked.lines)


def test_packing_trains_the_same_tokens_without_padding(runs):
    plain, packed = runs["plain"], runs["packed"]
    assert packed.of("start")[0]["levers"]["packing"] is True
    for a, b in zip(_steps(plain), _steps(packed), strict=True):
        # The same examples (same tokens, non-padding) in one row: the row is as long as the tokens.
        assert b["tokens"] == a["tokens"] and b["seqLen"] == b["tokens"]
        assert a["seqLen"] * 4 >= a["tokens"]  # the padded batch: 4 rows as long as the longest
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
        assert b["tokensPerSecond"] > 0
    check_schema(packed.lines)


def test_offloading_is_a_noted_no_op_on_cpu(runs):
    packed = runs["packed"]
    lever = packed.of("start")[0]["levers"]["activationOffloading"]
    assert lever["requested"] is True and lever["active"] is False and "inactive on cpu" in lever["note"]
    assert "activation_offloading: inactive on cpu" in packed.stderr
    assert runs["plain"].of("start")[0]["levers"]["activationOffloading"] == {"requested": False, "active": False, "note": None}


def test_config_keys_select_the_levers(tmp_path, models):
    config = write_config(tmp_path / "c.yaml", max_steps=1, loss_implementation="chunked", packing=True, activation_offloading=True)
    result = run_trainer("--config", str(config), "--model", str(models["tiny-llama"]), "--output", str(tmp_path / "o"),
                         "--device", "cpu", "--memory-every", "0")
    assert result.rc == 0, result.stderr[-3000:]
    levers = result.of("start")[0]["levers"]
    assert levers["loss"] == "chunked" and levers["packing"] is True and levers["activationOffloading"]["requested"] is True
    # Keys the runtime acts on are not reported as having no effect.
    assert "no effect" not in result.stderr or "loss_implementation" not in result.stderr.split("no effect")[1].splitlines()[0]


def test_unknown_loss_implementation_is_an_input_error(tmp_path, models):
    config = write_config(tmp_path / "c.yaml", max_steps=1, loss_implementation="fused")
    result = run_trainer("--config", str(config), "--model", str(models["tiny-llama"]), "--output", str(tmp_path / "o"), "--device", "cpu")
    assert result.rc == 1
    error = result.of("error")[0]
    assert error["path"] == "TrainingArguments.loss_implementation" and "fused" in error["message"] and "chunked" in error["message"]
    assert "Traceback" not in result.stderr


def test_bad_loss_flag_is_a_usage_error(models):
    result = run_trainer("--loss", "fused", "--model", str(models["tiny-llama"]))
    assert result.rc == 2 and "--loss" in result.stderr and "chunked" in result.stderr


@pytest.mark.parametrize("device,checkpointing,active,enables", [
    ("cuda", True, True, False),
    ("cuda", False, True, True),   # offloading works through the checkpoint: it turns checkpointing on
    ("cpu", True, False, False),
    ("cpu", False, False, False),
])
def test_offload_decision(device, checkpointing, active, enables):
    decision = _offload.decide(True, device, checkpointing)
    assert decision.requested and decision.active is active and decision.enables_checkpointing is enables
    assert decision.note and (("inactive on cpu" in decision.note) is (device == "cpu"))
    assert _offload.decide(False, device, checkpointing) == _offload.OffloadDecision(False, False, False, None)
