"""Running the recipe on several ranks under torchrun (torch.distributed.run).

torchrun starts one trainer process per rank and tells each who it is through the
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); without those
variables the trainer is one process and nothing here does anything. The process group uses
gloo on CPU and nccl on CUDA. Two ways to spread the model:

- ddp: torch.nn.parallel.DistributedDataParallel, a full replica per rank; gradients are
  all-reduced in buckets during backward, so every rank's weights and optimizer state stay
  equal and rank 0's copy is the run's.
- fsdp: FSDP2 (torch.distributed.fsdp.fully_shard) per decoder layer and at the root: each
  rank holds 1/world of the parameters, gradients and optimizer state, and all-gathers one
  layer's parameters around its forward and backward. Saving gathers the full state dict
  onto rank 0 (torch.distributed.checkpoint.state_dict, full_state_dict + cpu_offload).

Data: every optimizer step takes one global batch of per_device x world examples from the
same deterministic order a 1-process run with that batch would use, and rank r trains on
its r-th slice (DistributedSampler's split, done on the batch order so resume stays exact).
The effective batch is per_device x world x gradient_accumulation and the learning-rate
schedule counts optimizer steps, so a run of N steps updates N times for any rank count.
"""
from __future__ import annotations

import datetime
import os

from .events import InputError, set_rank


class World:
    """This process's place in the run: rank, world size, and the collectives the recipe needs."""

    def __init__(self, parallelism: str | None = None):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = "RANK" in os.environ and self.world_size >= 1 and "MASTER_ADDR" in os.environ
        self.parallelism = parallelism or ("ddp" if self.world_size > 1 else "none")
        self.is_main = self.rank == 0
        self.backend: str | None = None
        if self.enabled:
            set_rank(self.rank)  # every event of a distributed run says which rank sent it
        if parallelism == "fsdp" and not self.enabled:
            raise InputError("config", "--parallelism fsdp needs torchrun (headroom tune --nproc N): this trainer runs as one process", "--parallelism")

    def init(self, device: str) -> None:
        """Joins the process group (torchrun's env:// rendezvous). Picks this rank's GPU on CUDA."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        self.backend = "nccl" if device == "cuda" else "gloo"
        if device == "cuda":
            torch.cuda.set_device(self.local_rank)
        # A peer that dies mid-collective closes its sockets, which fails the others at once;
        # the timeout only bounds a peer that hangs (5 minutes rather than torch's 30).
        dist.init_process_group(self.backend, timeout=datetime.timedelta(minutes=5))

    def device_name_suffix(self) -> str:
        return f" x{self.world_size} ranks ({self.parallelism}, {self.backend})" if self.enabled else ""

    # --- data ---------------------------------------------------------------------------

    def shard(self, global_batch: list) -> list:
        """This rank's slice of one global micro-batch (per_device x world examples).

        A short last batch of an epoch is filled up by repeating its own examples, as
        DistributedSampler pads, so that no rank gets an empty batch and all ranks run the same
        number of collectives.
        """
        if not self.enabled or self.world_size == 1:
            return global_batch
        per_rank = -(-len(global_batch) // self.world_size)
        padded = (global_batch * self.world_size)[: per_rank * self.world_size]
        return padded[self.rank * per_rank:(self.rank + 1) * per_rank]

    # --- model --------------------------------------------------------------------------

    def wrap(self, model, device: str, method: str, loss: str = "full"):
        """DDP or FSDP2 around the (LoRA) model and its loss (_loss.TrainingLoss, so that the chunked
        loss runs inside the wrapper's forward); returns what the loop calls forward on."""
        if not self.enabled:
            return model
        import torch

        from ._loss import TrainingLoss

        if self.parallelism == "fsdp":
            if method == "qlora":
                # bitsandbytes keeps 4-bit weights as uint8 Params4bit with a quant_state that
                # lives beside the tensor; FSDP2 shards a parameter by slicing dim 0 into
                # DTensors and cannot carry (or all-gather) that state. Sharding QLoRA needs
                # bnb_4bit_quant_storage set to the compute dtype and FSDP1's flat parameters
                # on CUDA (transformers/accelerate's fsdp path); on this runtime it is refused.
                raise InputError(
                    "config",
                    "QLoRA with --parallelism fsdp is not supported: FSDP2 (fully_shard) cannot shard bitsandbytes 4-bit "
                    "weights (their quant_state is not a tensor it can split); use --parallelism ddp or --method lora",
                    "--parallelism")
            from torch.distributed.fsdp import fully_shard

            layers = _decoder_layers(model)
            if not layers:
                raise InputError("model", "--parallelism fsdp: found no decoder layers (model.layers) to shard; use --parallelism ddp", "--parallelism")
            for layer in layers:
                fully_shard(layer)
            # The root: the parameters no layer owns (embedding, final norm, lm_head), gathered
            # around TrainingLoss.forward, which is where the chunked loss calls the lm_head.
            root = TrainingLoss(model, loss)
            fully_shard(root)
            return root
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if device == "cuda" else None
        return DistributedDataParallel(TrainingLoss(model, loss), device_ids=ids)

    @staticmethod
    def unwrap(model):
        """The model under DDP's wrapper and the loss module (FSDP2 changes modules in place)."""
        from ._loss import TrainingLoss

        model = getattr(model, "module", model)
        return model.model if isinstance(model, TrainingLoss) else model

    # --- collectives --------------------------------------------------------------------

    def agree_to_stop(self, local_stop: bool) -> bool:
        """True on every rank if any rank was asked to stop: all stop after the same step."""
        if not self.enabled:
            return local_stop
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1 if local_stop else 0], dtype=torch.int32, device=self._device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def mean(self, value: float) -> float:
        """The mean over ranks (each rank's loss is the mean over its own tokens)."""
        if not self.enabled:
            return value
        return self._reduce(value, "sum") / self.world_size

    def total(self, value: int) -> int:
        return int(round(self._reduce(float(value), "sum"))) if self.enabled else value

    def gather(self, value: int) -> list[int]:
        """Every rank's value, in rank order (e.g. each rank's measured peak)."""
        if not self.enabled:
            return [value]
        import torch
        import torch.distributed as dist

        out = [torch.zeros(1, dtype=torch.int64, device=self._device()) for _ in range(self.world_size)]
        dist.all_gather(out, torch.tensor([value], dtype=torch.int64, device=self._device()))
        return [int(t.item()) for t in out]

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def _reduce(self, value: float, op: str) -> float:
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def _device(self):
        import torch

        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    # --- state for checkpoints and the final save ----------------------------------------

    def full_model_state(self, model) -> dict | None:
        """FSDP: the full (unsharded) state dict on rank 0, None elsewhere; others: None (use the module)."""
        if self.parallelism != "fsdp" or not self.enabled:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # Collective: every rank calls it; with cpu_offload only rank 0 keeps the result. Named as
        # the model's own (without TrainingLoss's prefix), as save_pretrained and a resume expect.
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return _renamed_model_state(state, _strip) if self.is_main else None

    def optimizer_state(self, model, optimizer) -> dict | None:
        """The optimizer's state dict to save: FSDP gathers the full one (keyed by parameter name)."""
        if self.parallelism != "fsdp" or not self.enabled:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        state = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return _renamed_optimizer_state(state, _strip) if self.is_main else None

    def load_optimizer_state(self, model, optimizer, state: dict) -> None:
        if self.parallelism != "fsdp" or not self.enabled:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, _renamed_optimizer_state(state, _prefixed(model)), options=StateDictOptions(full_state_dict=True))


# FSDP's full state dicts are keyed by parameter name under the module it sharded (TrainingLoss,
# which adds "model."); checkpoints store the model's own names, so that they read the same as
# before the loss module existed.
def _strip(name: str) -> str:
    from ._loss import PREFIX

    return name.removeprefix(PREFIX)


def _prefixed(model):
    from ._loss import PREFIX, TrainingLoss

    wrapped = isinstance(getattr(model, "module", model), TrainingLoss)
    return lambda name: PREFIX + name if wrapped and not name.startswith(PREFIX) else name


def _renamed_model_state(state: dict, rename) -> dict:
    return {rename(k): v for k, v in state.items()}


def _renamed_optimizer_state(state: dict, rename) -> dict:
    """{"state": {name: ...}, "param_groups": [{"params": [name, ...], ...}]} with every name renamed."""
    out = dict(state)
    if isinstance(state.get("state"), dict):
        out["state"] = {rename(k) if isinstance(k, str) else k: v for k, v in state["state"].items()}
    if isinstance(state.get("param_groups"), list):
        out["param_groups"] = [{**g, "params": [rename(p) if isinstance(p, str) else p for p in g.get("params", [])]} for g in state["param_groups"]]
    return out


def _decoder_layers(model) -> list:
    """The transformer blocks (ModuleList named `layers`) of a (PEFT-wrapped) causal LM."""
    import torch

    for name, module in model.named_modules():
        if name.endswith(".layers") and isinstance(module, torch.nn.ModuleList):
            return list(module)
    return []

