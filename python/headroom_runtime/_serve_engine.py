"""The serving worker's engine: one base model, LoRA adapters loaded once, a batched decode loop.

The decode loop is our own (not `model.generate`) so that each step can stream a token per
request, drop finished sequences from the batch, and sample each request with its own
temperature, top_p and seeded generator. It follows what transformers' generate does for a
left-padded batch, so greedy output matches `generate(do_sample=False)`:
position ids count real tokens only (cumsum of the attention mask − 1, pads clamped to 0),
the attention mask grows by one column a step, and the prefill computes logits for the last
position only (`logits_to_keep=1`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _model
from ._serve_text import CompletionText, Request, RequestError
from .events import InputError, log


def discover_adapters(pairs: list[str], adapters_dir: str | None) -> dict[str, Path]:
    """NAME -> directory from `--adapter NAME=DIR` and KAITO's layout (every subdirectory of
    --adapters-dir holding adapter_config.json, named by the subdirectory, as /mnt/adapter/<name>)."""
    found: dict[str, Path] = {}
    for pair in pairs:
        name, sep, directory = pair.partition("=")
        if not sep or not name or not directory:
            raise InputError("input", f"--adapter {pair!r}: expected NAME=DIR, e.g. --adapter support=runs/abc/adapter", "--adapter")
        if name in found:
            raise InputError("input", f"--adapter {name}: the name is given twice; give each adapter a distinct name", "--adapter")
        found[name] = Path(directory).expanduser()
    if adapters_dir:
        root = Path(adapters_dir).expanduser()
        if not root.is_dir():
            raise InputError("input", f"--adapters-dir {adapters_dir} is not a directory", "--adapters-dir")
        for sub in sorted(p for p in root.iterdir() if (p / "adapter_config.json").is_file()):
            if sub.name in found:
                raise InputError("input", f"adapter {sub.name}: named both by --adapter and in --adapters-dir {adapters_dir}; rename one", "--adapters-dir")
            found[sub.name] = sub
    for name, directory in found.items():
        if not (directory / "adapter_config.json").is_file():
            what = "does not exist" if not directory.exists() else "has no adapter_config.json"
            raise InputError("input", f"adapter {name}: {directory} {what}; point it at a directory saved by peft "
                             "(adapter_config.json + adapter_model.safetensors), e.g. a headroom tune run's adapter", "--adapter")
    return found


@dataclass
class Sequence:
    """One request's state inside a batch."""
    req: Request
    prompt_ids: list[int]
    generator: object = None
    ids: list[int] = field(default_factory=list)
    text: CompletionText | None = None
    started: float = 0.0
    first_token_at: float | None = None
    finish: str | None = None
    batch_size: int = 0  # how many requests its batch started with


class Engine:
    def __init__(self, model_ref: str, model_id: str, adapters: dict[str, Path], device: str, max_batch: int):
        import torch

        self.model_id, self.device, self.max_batch = model_id, device, max_batch
        ref, key = _model.resolve_model(model_ref, {}, {})
        self.tokenizer = _model.load_tokenizer(ref, {}, key)
        self.tokenizer.padding_side = "left"
        # CPU: float32 (the tiny models, and no emulated bf16); CUDA: bf16 where the GPU has it.
        if device == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = torch.float32
        model = _model.load_model(ref, key, {"torch_dtype": str(self.dtype).replace("torch.", "")}, device)
        model.config.use_cache = True  # _model turns it off for training
        self.adapter_names = list(adapters)
        if adapters:
            model = self._load_adapters(model, adapters)
        self.model = model.eval()
        config = self.model.config if not adapters else self.model.base_model.model.config
        self.max_positions = getattr(config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(self.eos_ids), 0)
        self.weight_bytes = sum(t.numel() * t.element_size() for t in list(self.model.parameters()) + list(self.model.buffers()))
        self.live_bytes = self.weight_bytes
        self.peak_bytes = self.weight_bytes
        self.meter = None  # a MemTracker-based peak meter on CPU when asked (--measure-memory)

    def _load_adapters(self, model, adapters: dict[str, Path]):
        from peft import PeftModel

        peft_model = None
        for name, directory in adapters.items():
            try:
                if peft_model is None:
                    peft_model = PeftModel.from_pretrained(model, str(directory), adapter_name=name, is_trainable=False)
                else:
                    peft_model.load_adapter(str(directory), adapter_name=name, is_trainable=False)
            except Exception as exc:  # peft raises ValueError/KeyError/RuntimeError for a mismatched adapter
                detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                raise InputError("input", f"adapter {name}: cannot load {directory} onto {self.model_id}: {detail}; "
                                 "check it was trained on this base model", "--adapter") from None
            log(f"adapter {name} loaded from {directory}")
        return peft_model

    # --- memory -----------------------------------------------------------------------------

    def memory(self) -> dict:
        """{"allocatedBytes","reservedBytes","peakAllocatedBytes"}: CUDA's allocator counters; on
        CPU the live tensor bytes (weights + the KV cache of the running batch, counted from the
        real tensors after each step) and their peak; with --measure-memory the peak also
        counts every intermediate tensor of the forward passes (torch's MemTracker)."""
        if self.device == "cuda":
            import torch

            return {"allocatedBytes": torch.cuda.memory_allocated(), "reservedBytes": torch.cuda.memory_reserved(),
                    "peakAllocatedBytes": torch.cuda.max_memory_allocated()}
        return {"allocatedBytes": self.live_bytes, "reservedBytes": self.live_bytes, "peakAllocatedBytes": self.peak_bytes}

    def _note_live(self, cache) -> None:
        cache_bytes = 0
        for layer in getattr(cache, "layers", []):
            for name in ("keys", "values"):
                t = getattr(layer, name, None)
                if t is not None and hasattr(t, "numel"):
                    cache_bytes += t.numel() * t.element_size()
        self.live_bytes = self.weight_bytes + cache_bytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    # --- requests ---------------------------------------------------------------------------

    def encode(self, req: Request) -> list[int]:
        """Token ids of the prompt; messages through the tokenizer's chat template."""
        if req.messages is not None:
            if not getattr(self.tokenizer, "chat_template", None):
                raise RequestError(f"model {self.model_id} has no chat template; send prompt instead of messages")
            ids = self.tokenizer.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=True, return_dict=False)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            ids = list(ids)
        else:
            ids = self.tokenizer(req.prompt, add_special_tokens=True)["input_ids"]
        if not ids:
            raise RequestError("the prompt is empty after tokenization; send some text")
        if self.max_positions and len(ids) + req.max_tokens > self.max_positions:
            raise RequestError(
                f"this model's maximum context length is {self.max_positions} tokens; the request asks for "
                f"{len(ids) + req.max_tokens} ({len(ids)} in the prompt, max_tokens={req.max_tokens}); "
                "shorten the prompt or lower max_tokens")
        return ids

    def _adapter_context(self, model_name: str):
        import contextlib

        if not self.adapter_names:
            return contextlib.nullcontext()
        if model_name == self.model_id:
            return self.model.disable_adapter()
        self.model.set_adapter(model_name)
        return contextlib.nullcontext()

    def run_batch(self, seqs: list[Sequence], on_token, on_done, poll) -> None:
        """Decodes `seqs` (one model id) together until each finishes.

        on_token(seq, delta) for streamed text, on_done(seq) at each finish, and poll() between
        steps returns ids cancelled meanwhile (and lets the worker answer stats)."""
        import torch

        with torch.inference_mode(), self._adapter_context(seqs[0].req.model):
            self._decode(seqs, on_token, on_done, poll)

    def _decode(self, seqs, on_token, on_done, poll) -> None:
        import torch
        from transformers import DynamicCache

        now = time.perf_counter()
        for s in seqs:
            s.started = s.started or now
            s.text = CompletionText(s.req.stop)
            s.batch_size = len(seqs)
            if s.req.temperature > 0:
                s.generator = torch.Generator(device=self.device)
                s.generator.manual_seed(s.req.seed if s.req.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
        width = max(len(s.prompt_ids) for s in seqs)
        input_ids = torch.tensor([[self.pad_id] * (width - len(s.prompt_ids)) + s.prompt_ids for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in seqs], device=self.device)
        cache = DynamicCache(config=self.model.config)
        active = list(seqs)
        step_input = input_ids
        while active:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_input.shape[1]:]
            out = self._forward(step_input, mask, positions, cache)
            logits = out.logits[:, -1, :].float()
            self._note_live(cache)
            next_ids = self._choose(active, logits)
            keep = []
            for row, (s, token) in enumerate(zip(active, next_ids)):
                if s.first_token_at is None:
                    s.first_token_at = time.perf_counter()
                s.ids.append(token)
                if token in self.eos_ids:
                    s.finish = "stop"
                stopped = False
                if s.req.stream or s.req.stop:
                    delta, stopped = s.text.update(self._decode_text(s.ids))
                    if delta and s.req.stream:
                        on_token(s, delta)
                if stopped:
                    s.finish = "stop"
                elif s.finish is None and len(s.ids) >= s.req.max_tokens:
                    s.finish = "length"
                if s.finish is None:
                    keep.append(row)
            cancelled = poll()
            for row, s in enumerate(active):
                if s.finish is None and s.req.id in cancelled:
                    s.finish = "cancelled"
                    keep.remove(row)
                if s.finish is not None:
                    if s.finish != "cancelled":
                        tail = s.text.finish(self._decode_text(s.ids))
                        if tail and s.req.stream:
                            on_token(s, tail)
                    on_done(s)
            if not keep:
                break
            if len(keep) < len(active):
                # Finished sequences leave the batch: their rows go from the cache and the mask.
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask = mask[index]
                next_ids = [next_ids[i] for i in keep]
                active = [active[i] for i in keep]
            step_input = torch.tensor(next_ids, device=self.device).unsqueeze(-1)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        del cache
        self._note_live(None)

    def _forward(self, input_ids, mask, positions, cache):
        kwargs = dict(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                      use_cache=True, logits_to_keep=1)
        if self.meter is not None:
            return self.meter.forward(self.model, kwargs, cache)
        return self.model(**kwargs)

    def _choose(self, active: list[Sequence], logits) -> list[int]:
        """Next token per row: argmax when temperature is 0, else a sample from the temperature-
        scaled, top-p-truncated distribution drawn with the request's own generator."""
        import torch

        greedy = logits.argmax(-1).tolist()
        chosen = []
        for row, s in enumerate(active):
            if s.req.temperature == 0:
                chosen.append(greedy[row])
                continue
            probs = torch.softmax(logits[row] / s.req.temperature, dim=-1)
            if s.req.top_p < 1.0:
                # Nucleus sampling (Holtzman et al. 2019): keep the smallest set of most likely
                # tokens whose mass reaches top_p; the most likely token always stays.
                sorted_p, order = probs.sort(descending=True)
                outside = (sorted_p.cumsum(-1) - sorted_p) >= s.req.top_p
                sorted_p[outside] = 0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            chosen.append(int(torch.multinomial(probs, 1, generator=s.generator).item()))
        return chosen

    def _decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def completion(self, s: Sequence) -> str:
        if s.text is not None and (s.req.stream or s.req.stop):
            return s.text.text
        return self._decode_text(s.ids)


class PeakMeter:
    """CPU peak of live tensor bytes through each forward pass (weights, KV cache, activations),
    counted by torch's MemTracker as the trainer's MemoryMeter does; costs a Python dispatch per op."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def forward(self, model, kwargs, cache):
        import torch
        from torch.distributed._tools.mem_tracker import MemTracker

        from ._memory import _NoopHandle

        tracker = MemTracker()
        for p in model.parameters():  # frozen weights: no grad hooks (see _memory.MemoryMeter)
            tracker._param_to_grad_hook_handles[p] = (_NoopHandle(), _NoopHandle())
        cache_tensors = [t for layer in getattr(cache, "layers", []) for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                         if isinstance(t, torch.Tensor)]
        tracker.track_external(model, *cache_tensors)
        with tracker:
            out = model(**kwargs)
        peak = int(tracker.get_tracker_snapshot("peak").get(torch.device("cpu"), {}).get("Total", 0))
        self.engine.peak_bytes = max(self.engine.peak_bytes, peak)
        return out

