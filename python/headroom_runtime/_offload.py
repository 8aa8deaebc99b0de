"""Activation offloading: the checkpointed block inputs held in pinned CPU memory (CUDA).

With gradient checkpointing each decoder block keeps only its input (batch x seq x hidden) for
the recompute in backward; at long sequences those inputs, one per layer, are what is left of
the activations (layers x batch x seq x hidden x 2 B in bf16: 3.2 GB for Phi-3-mini at 128k
tokens). transformers 5's gradient_checkpointing_enable(offload=True) runs each block's
checkpoint under torch.autograd.graph.save_on_cpu(pin_memory=True): the inputs the checkpoint
saves go to pinned host memory in forward and come back in backward (Unsloth's "offloaded
gradient checkpoint"; TRL's activation_offloading). The cost is a device-to-host copy per block
in forward and host-to-device in backward, on the compute stream.

On CPU the activations already live in host memory: there is nothing to offload, so the
request is accepted, logged, and reported inactive.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OffloadDecision:
    requested: bool
    active: bool
    # Offloading works through the checkpoint: requested without checkpointing, it turns checkpointing on.
    enables_checkpointing: bool
    note: str | None


def decide(requested: bool, device: str, checkpointing: bool) -> OffloadDecision:
    """What --offload-activations / TrainingArguments.activation_offloading does on this device."""
    if not requested:
        return OffloadDecision(False, False, False, None)
    if device != "cuda":
        return OffloadDecision(True, False, False,
                               f"activation_offloading: inactive on {device}: activations already live in host memory, nothing to offload")
    note = "activation_offloading: checkpointed block inputs kept in pinned CPU memory, brought back for backward"
    if not checkpointing:
        note += " (turns on gradient_checkpointing, which offloading works through)"
    return OffloadDecision(True, True, not checkpointing, note)


def enable(model, gradient_checkpointing_kwargs: dict | None) -> None:
    """Gradient checkpointing with the saved block inputs offloaded to pinned host memory."""
    kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs, offload=True)
    model.enable_input_require_grads()
