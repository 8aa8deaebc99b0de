"""Fine-tune a causal LM with LoRA, QLoRA or full training, reporting memory on every step.

One explicit recipe, readable top to bottom (torchtune's style): config → tokenizer → data →
model (+ quantization, + LoRA) → optimizer and schedule → the training loop → save. It
reads KAITO's training_config.yaml and writes what KAITO's tuning pod writes: the adapter
(adapter_model.safetensors + adapter_config.json) and fine_tuning_completed.txt in
output_dir, plus run.json. Events go to stdout as JSON lines (events.py); logs to stderr.

    python -m headroom_runtime.train [--config training_config.yaml] [--model default|DIR|HUB_ID]
        [--data PATH|URL] [--output DIR] [--max-steps N] [--device auto|cpu|cuda]
        [--method auto|lora|qlora|full] [--resume-from CHECKPOINT_OR_OUTPUT_DIR]
        [--predicted-peak-bytes N] [--skip-bad-rows] [--memory-every N] [--parallelism ddp|fsdp]
        [--loss full|chunked] [--packing] [--offload-activations] [--weights pretrained|auto|random]

Under torchrun (python -m torch.distributed.run --nproc-per-node N -m headroom_runtime.train ...)
each rank trains its slice of every batch (_distributed.py); rank 0 alone writes the adapter,
checkpoints, run.json and the sentinel.

Exit codes: 0 succeeded; 1 bad input (an `error` event names the key or file:line first);
2 internal error; 3 out of memory (an `oom` event first); 4 preempted by SIGTERM (after a
checkpoint); 130 interrupted by SIGINT (after a checkpoint).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from ._model import WEIGHT_MODES
from ._throughput import Throughput
from .events import InputError, emit, log, reader_gone

EXIT_OK, EXIT_INPUT, EXIT_INTERNAL, EXIT_OOM, EXIT_PREEMPTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
SENTINEL = "fine_tuning_completed.txt"  # KAITO's pusher waits for this file
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw_8bit", "adamw_bnb_8bit",
              "paged_adamw_8bit", "paged_adamw_32bit", "sgd", "adagrad", "rmsprop", "adafactor")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m headroom_runtime.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="KAITO training_config YAML (ConfigMap or bare); default $YAML_FILE_PATH, else the built-in QLoRA config")
    p.add_argument("--model", help="default | tiny-phi3 | tiny-llama | a model directory | a hub id")
    p.add_argument("--data", help="dataset file or URL (jsonl, json, csv, parquet); overrides DatasetConfig.dataset_path")
    p.add_argument("--output", help="output directory; overrides TrainingArguments.output_dir")
    p.add_argument("--max-steps", type=int, help="optimizer steps; overrides TrainingArguments.max_steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--method", choices=("auto", "lora", "qlora", "full"), default="auto",
                   help="auto: qlora when QuantizationConfig loads 4/8-bit, else lora")
    p.add_argument("--resume-from", help="a checkpoint-N directory, or an output directory (its latest checkpoint)")
    p.add_argument("--predicted-peak-bytes", type=int, help="the planner's worst case at max_length, echoed in the start event and the done summary")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip malformed dataset rows instead of refusing")
    p.add_argument("--memory-every", type=int, default=int(os.environ.get("HEADROOM_MEMORY_EVERY", "100")),
                   help="CPU: count live tensor bytes on the first two steps and every N steps (default 100; 0 = never)")
    p.add_argument("--parallelism", choices=("ddp", "fsdp"),
                   help="under torchrun: ddp (a replica per rank, default) or fsdp (FSDP2 fully_shard: parameters, gradients and optimizer state sharded)")
    p.add_argument("--loss", choices=("full", "chunked"),
                   help="cross-entropy over the vocabulary whole or in chunks of tokens (_loss.py); overrides TrainingArguments.loss_implementation")
    p.add_argument("--packing", action="store_true", default=None,
                   help="padding-free packing of each batch's examples into one row; overrides TrainingArguments.packing")
    p.add_argument("--offload-activations", action="store_true", default=None,
                   help="CUDA: checkpointed block inputs in pinned CPU memory; overrides TrainingArguments.activation_offloading")
    p.add_argument("--weights", choices=WEIGHT_MODES, default="pretrained",
                   help="pretrained (default): the model's real weights, or fail; auto: real weights when present, else random ones "
                        "built from its config (catalog models, or a directory with a config.json); random: always random "
                        "(memory and speed experiments: the loss means nothing)")
    return p.parse_args(argv)


class StopRequest:
    """SIGTERM (a Kubernetes preemption) or SIGINT: finish the step, checkpoint, stop."""

    def __init__(self):
        self.signal: int | None = None
        # Under the supervisor (HEADROOM_RUN_ID set) a dead parent is a preemption too: a
        # supervisor killed with SIGKILL cannot forward anything, and an orphaned trainer
        # must not train on into a directory whose run nobody records.
        self.supervised = bool(os.environ.get("HEADROOM_RUN_ID"))
        self.parent = os.getppid()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def keep_going(self) -> bool:
        """False once a stop was requested (a signal, or the supervisor gone)."""
        if self.signal is None and self.supervised and (os.getppid() != self.parent or reader_gone()):
            self.signal = signal.SIGTERM
            log("the supervisor is gone: writing a checkpoint, then stopping (resume with headroom tune --resume)")
        return self.signal is None

    def _handle(self, signum, _frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal = signum
        log(f"received {signal.Signals(signum).name}: finishing this step, then writing a checkpoint")


def main(argv=None) -> int:
    args = parse_args(argv)
    # Before torch initialises CUDA: fewer fragmentation OOMs (KAITO's tuning pod sets the same).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    stop = StopRequest()
    run = Run()
    world = None
    try:
        from ._distributed import World

        world = World(args.parallelism)
        run.is_main = world.is_main
        return recipe(args, stop, run, world)
    except InputError as exc:
        emit("error", kind=exc.kind, message=exc.message, path=exc.path)
        run.finish("failed", error=exc.message)
        return EXIT_INPUT
    except KeyboardInterrupt:
        emit("error", kind="signal", message="interrupted twice; stopped without a checkpoint")
        run.finish("cancelled")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so, with the traceback on stderr
        traceback.print_exc()
        emit("error", kind="internal", message=f"{type(exc).__name__}: {exc}")
        run.finish("failed", error=f"{type(exc).__name__}: {exc}")
        return EXIT_INTERNAL
    finally:
        if world is not None:
            world.shutdown()


def recipe(args, stop: StopRequest, run: "Run", world) -> int:
    import torch

    from . import _checkpoint, _data, _loss, _model, _offload, _packed_attention
    from ._memory import MemoryMeter, quantization_state_tensors
    from .config import load_config

    started = time.time()

    # 1. Config: KAITO's sections, defaults filled in, unknown keys rejected.
    cfg = load_config(args.config)
    train = cfg.train
    if args.max_steps is not None:
        train["max_steps"] = args.max_steps
    for flag, key in (("loss", "loss_implementation"), ("packing", "packing"), ("offload_activations", "activation_offloading")):
        if getattr(args, flag) is not None:
            train[key] = getattr(args, flag)
    loss_impl = str(train.get("loss_implementation") or "full")
    if loss_impl not in _loss_implementations():
        raise InputError("config", f"TrainingArguments.loss_implementation={loss_impl!r} is not known; use full or chunked (or --loss)", "TrainingArguments.loss_implementation")
    packing = bool(train.get("packing"))
    if cfg.ignored_training_keys():
        log(f"TrainingArguments keys with no effect in this runtime: {', '.join(cfg.ignored_training_keys())}")
    output_dir = Path(args.output or train["output_dir"] or "runs/tune").resolve()
    run.output_dir = output_dir

    device = _pick_device(args.device)
    bits = cfg.quant_bits()
    method = args.method if args.method != "auto" else ("qlora" if bits else "lora")
    if method == "qlora" and not bits:
        bits = 4
        cfg.quant.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
        log("--method qlora without QuantizationConfig.load_in_4bit/8bit: using 4-bit nf4 with double quantization")
    elif method == "lora" and bits:
        log(f"--method lora: loading the base unquantized (QuantizationConfig asks for {bits}-bit)")
        bits = None
    elif method == "full" and bits:
        raise InputError("config", f"full fine-tuning cannot train a {bits}-bit quantized base: remove QuantizationConfig.load_in_{bits}bit or use --method qlora", f"QuantizationConfig.load_in_{bits}bit")
    if world.parallelism == "fsdp" and method == "qlora":
        world.wrap(None, device, method)  # refuses, saying why (before minutes of loading)
    world.init(device)
    run.device, run.method, run.predicted = device, method, args.predicted_peak_bytes
    checkpoint = None
    if args.resume_from:  # checked now, before minutes of loading
        checkpoint = _checkpoint.find(Path(args.resume_from))
        if checkpoint is None:
            raise InputError("config", f"no checkpoint in {args.resume_from} (expected trainer_state.json or checkpoint-N/)", "--resume-from")
    seed = int(train.get("seed") or 42)
    torch.manual_seed(seed)

    # 2. Tokenizer (model references resolve first, so a bad path fails before any work).
    model_ref, model_key = _model.resolve_model(args.model, cfg.model, cfg.given.get("ModelConfig", {}))
    model_source = _model.resolve_source(model_ref, model_key, cfg.model, args.weights)
    tokenizer = _model.load_tokenizer(model_source.tokenizer_ref, cfg.model, model_key)
    _model.check_vocabulary(tokenizer, model_source)

    # 3. Data: read, check columns, tokenize with the chat template, truncate, split.
    source, source_key = _data.resolve_source(args.data, cfg.dataset)
    data_dir = _data.download_dir()
    try:
        path = _data.fetch(source, source_key, data_dir)
        rows = _data.read_rows(path, cfg.dataset.get("dataset_extension"), args.skip_bad_rows)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    fmt = _data.detect_format(rows, str(source))
    max_length = int(train.get("max_length") or 1024)
    model_max = getattr(model_source.config, "max_position_embeddings", None) if model_source.random else _max_positions(model_ref)
    if model_max and max_length > model_max:
        log(f"TrainingArguments.max_length={max_length} exceeds the model's {model_max} positions; truncating at {model_max}")
        max_length = model_max
    examples = _data.tokenize(rows, fmt, tokenizer, max_length, train, str(source), args.skip_bad_rows)
    train_examples, eval_examples = _data.split(examples, float(cfg.dataset["train_test_split"]), int(cfg.dataset["shuffle_seed"]))
    batch_size = int(train["per_device_train_batch_size"])
    accumulation = int(train.get("gradient_accumulation_steps") or 1)
    # The first two optimizer steps get the longest examples: step 1 fails fast, step 2 is the first
    # with optimizer state allocated, where CPU memory is measured at its steady state (_memory.py).
    # One global batch (per device x ranks) per micro-step, sliced per rank (World.shard).
    order = _data.BatchOrder(train_examples, batch_size * world.world_size, bool(cfg.dataset["shuffle_dataset"]), seed, lead=2 * accumulation)
    log(f"{len(train_examples)} training examples ({fmt} format) from {source}; {len(eval_examples)} for eval; "
        f"longest {max(len(e.input_ids) for e in train_examples)} tokens")

    # 4. Model: dtype, optional 4/8-bit quantization, k-bit preparation, LoRA or full.
    quantization = _model.bnb_config(cfg.quant, bits, device) if bits else None
    load_ref = model_ref
    if model_source.random:
        # Rank 0 builds the cached random weights once; the other ranks then find them (a rank on
        # another node builds its own copy: the cache directory is per machine).
        if not world.is_main:
            world.barrier()
        load_ref = _model.materialise_random(model_source, device)
        if world.is_main:
            world.barrier()
    model = _model.load_model(load_ref, model_key, cfg.model, device, quantization)
    if packing:
        # Per-example sdpa instead of a row-sized block-diagonal mask (_packed_attention.py).
        why_not = _packed_attention.eligible(model.config, max_length)
        if why_not is None:
            _packed_attention.enable(model)
            log("packing: attention runs per example within each packed row (sdpa, no row-sized mask)")
        else:
            log(f"packing: attention uses transformers' block-diagonal mask over the packed row ({why_not})")
    # What the matmuls run in, decided by the device's capability (_device.py): 4-bit layers
    # dequantize to bnb_4bit_compute_dtype; everything else computes in the loaded dtype.
    compute_dtype = quantization.bnb_4bit_compute_dtype if bits == 4 else model.dtype
    offload = _offload.decide(bool(train.get("activation_offloading")), device, bool(train.get("gradient_checkpointing")))
    if offload.note:
        log(offload.note)
    if method == "qlora":
        model = _model.prepare_for_kbit(model, train)
    elif train.get("gradient_checkpointing"):
        _model.enable_gradient_checkpointing(model, train)
    if offload.active:  # after peft's k-bit preparation, which enables plain checkpointing
        _offload.enable(model, train.get("gradient_checkpointing_kwargs"))
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        model = _model.attach_lora(model, cfg.lora)
    total_params, trainable_params = _model.parameter_counts(model)
    checkpoint_state = None
    if checkpoint is not None:  # weights go into the unwrapped model (FSDP shards cannot take full tensors)
        try:
            checkpoint_state = _checkpoint.load_weights(checkpoint, model, method)
        except ValueError as exc:
            raise InputError("config", str(exc), "--resume-from") from None
        written_by = checkpoint_state.get("parallelism", "none")
        if (written_by == "fsdp") != (world.parallelism == "fsdp"):
            raise InputError("config", f"checkpoint {checkpoint} was written with parallelism {written_by}, this run uses {world.parallelism}: "
                             f"resume with the same --parallelism (its optimizer state is stored per {'parameter name' if written_by == 'fsdp' else 'parameter index'})", "--resume-from")
        written_world = int(checkpoint_state.get("world_size", 1))
        if written_world != world.world_size:
            # The position in the data counts global batches of per_device x ranks examples.
            raise InputError("config", f"checkpoint {checkpoint} was written by {written_world} rank(s), this run has {world.world_size}: "
                             f"resume with the same number of ranks (--nproc x --nnodes = {written_world})", "--resume-from")
    model = world.wrap(model, device, method, loss_impl)  # under torchrun: the loss inside the wrapper's forward (_loss.TrainingLoss)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    # 5. Optimizer and learning-rate schedule (TrainingArguments: optim, learning_rate, warmup, scheduler).
    steps_per_epoch = max(1, -(-order.per_epoch // accumulation))
    total_steps = int(train["max_steps"]) if int(train.get("max_steps") or -1) > 0 else int(steps_per_epoch * float(train["num_train_epochs"]) + 0.999)
    optimizer = _make_optimizer(train, trainable)
    scheduler = _make_scheduler(train, optimizer, total_steps)

    # 6. Resume: (weights above), optimizer, schedule, RNG and position in the data.
    step, micro_batches_done, first_loss = 0, 0, None
    if checkpoint is not None:
        _checkpoint.load_training_state(checkpoint, optimizer, scheduler, lambda sd: world.load_optimizer_state(model, optimizer, sd))
        state = checkpoint_state
        step, micro_batches_done, first_loss = state["step"], state["micro_batches"], state.get("first_loss")
        log(f"resumed from {checkpoint} at step {step}/{total_steps}")
    run.steps, run.first_loss, start_step = step, first_loss, step

    # A rerun into the same directory must not leave the previous run's success marker behind.
    if world.is_main:
        (output_dir / SENTINEL).unlink(missing_ok=True)
    if world.enabled and not stop.supervised:  # headroom tune prints it from the start event
        log(_describe_batch(batch_size, world.world_size, accumulation))

    memory = MemoryMeter(device, every=args.memory_every)
    quant_tensors = quantization_state_tensors(model)
    autocast = _autocast(device, train)
    if world.is_main:  # one start for the run (its config can outgrow an atomic pipe write, so ranks must not interleave it)
        emit("start", device=device, deviceName=_device_name(device) + world.device_name_suffix(), model={"name": model_ref, "params": total_params},
             method=method, computeDtype=str(compute_dtype).removeprefix("torch."), totalSteps=total_steps, examples=len(train_examples), trainableParams=trainable_params,
             config=cfg.summary(), resumedFromStep=step if args.resume_from else None,
             predicted={"peakAllocatedBytes": args.predicted_peak_bytes} if args.predicted_peak_bytes is not None else None,
             ranks=world.world_size if world.enabled else None, parallelism=world.parallelism if world.enabled else None,
             perDeviceBatch=batch_size, gradientAccumulation=accumulation, effectiveBatch=batch_size * world.world_size * accumulation,
             levers={"loss": loss_impl, "packing": packing,
                     "activationOffloading": {"requested": offload.requested, "active": offload.active, "note": offload.note}},
             weights=model_source.event(args.weights))

    # 7. The training loop: one `step` event per optimizer step.
    model.train()
    last_loss, first_step = None, step + 1
    save_strategy, save_steps = str(train.get("save_strategy") or "no"), int(train.get("save_steps") or 500)
    eval_strategy = str(train.get("eval_strategy") or "no") if eval_examples else "no"
    eval_steps = int(train.get("eval_steps") or train.get("logging_steps") or 500)

    def keep_going() -> bool:
        # Every rank must stop after the same step (a consistent checkpoint): any rank's
        # signal stops them all.
        if world.agree_to_stop(not stop.keep_going()):
            stop.signal = stop.signal or signal.SIGTERM
            return False
        return True

    while step < total_steps and keep_going():
        began = time.perf_counter()
        batches = [_data.collate_packed(world.shard(order.batch(micro_batches_done + i))) if packing else
                   _data.collate(world.shard(order.batch(micro_batches_done + i)), tokenizer.pad_token_id, train.get("pad_to_multiple_of"))
                   for i in range(accumulation)]
        tokens = sum(_data.real_tokens(b) for b in batches)  # not padding: tokensPerSecond counts these
        seq_len = max(b["input_ids"].shape[1] for b in batches)
        measuring = memory.should_measure(step + 1, first_step)
        tried: list[str] = []
        while True:
            try:
                with memory.measure(model, optimizer, quant_tensors) if measuring else contextlib.nullcontext():
                    loss = 0.0
                    for i, batch in enumerate(batches):
                        if i:
                            memory.next_micro_batch()
                        batch = {k: v.to(device) for k, v in batch.items()}
                        with autocast:
                            # Keep only the loss: holding the output would keep the logits
                            # (batch x seq x vocab) alive through backward.
                            micro_loss = _loss.loss(model, batch, loss_impl)
                        (micro_loss / accumulation).backward()
                        loss += micro_loss.item() / accumulation
                        del micro_loss
                    if train.get("max_grad_norm"):
                        torch.nn.utils.clip_grad_norm_([p for _, p in trainable], float(train["max_grad_norm"]))
                    lr = scheduler.get_last_lr()[0]
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                break
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
                if not _is_out_of_memory(exc):
                    raise
                # Free what the failed step held and try once more; a second failure is real.
                optimizer.zero_grad(set_to_none=True)
                micro_loss = batch = None
                gc.collect()
                if device == "cuda":
                    torch.cuda.empty_cache()
                # Distributed: no lone retry (the other ranks would wait in a collective that this
                # rank's retry reorders); the OOM ends the run and torchrun stops the others.
                if "retry" in tried or world.enabled:
                    emit("oom", step=step + 1, seqLen=seq_len, batch=batch_size * accumulation, message=str(exc).splitlines()[0], tried=tried)
                    run.finish("oom", error=str(exc).splitlines()[0])
                    return EXIT_OOM
                tried += ["empty_cache" if device == "cuda" else "gc_collect", "retry"]
                log(f"out of memory at step {step + 1} (seq {seq_len}, batch {batch_size}); retrying once after freeing memory")
        step += 1
        micro_batches_done += accumulation
        seconds = time.perf_counter() - began
        # The run's loss and tokens are over all ranks (each rank's loss is over its own slice).
        loss, tokens = world.mean(loss), world.total(tokens)
        first_loss = loss if first_loss is None else first_loss
        last_loss = loss
        run.steps, run.first_loss, run.last_loss, run.peak = step, first_loss, last_loss, memory.peak_bytes
        run.throughput.add(tokens, seconds, first=step == first_step, measured=measuring)
        emit("step", step=step, totalSteps=total_steps, loss=loss, lr=lr, tokens=tokens, seqLen=seq_len,
             tokensPerSecond=tokens / seconds if seconds > 0 else 0.0, epoch=micro_batches_done / order.per_epoch,
             memory=memory.sample())
        run.peak = memory.peak_bytes
        state = {"micro_batches": micro_batches_done, "first_loss": first_loss, "last_loss": last_loss, "total_steps": total_steps}
        epoch_ended = micro_batches_done // order.per_epoch > (micro_batches_done - accumulation) // order.per_epoch
        if eval_strategy == "steps" and step % eval_steps == 0 or eval_strategy == "epoch" and epoch_ended:
            eval_loss = _evaluate(model, eval_examples, tokenizer, train, device, autocast, loss_impl)
            if world.is_main:
                emit("eval", step=step, loss=eval_loss)
        if step < total_steps and (save_strategy == "steps" and step % save_steps == 0 or save_strategy == "epoch" and epoch_ended):
            path = _save_checkpoint(world, output_dir, step, model, optimizer, scheduler, state, method, train.get("save_total_limit"))
            if world.is_main:
                emit("checkpoint", step=step, path=str(path), reason="save_strategy")

    # 8. Stopped by a signal: checkpoint what was done, report, exit 4 (SIGTERM) or 130 (SIGINT).
    if stop.signal is not None and step < total_steps:
        if step > start_step:  # something new to keep
            state = {"micro_batches": micro_batches_done, "first_loss": first_loss, "last_loss": last_loss, "total_steps": total_steps}
            path = _save_checkpoint(world, output_dir, step, model, optimizer, scheduler, state, method, train.get("save_total_limit"))
            if world.is_main:
                emit("checkpoint", step=step, path=str(path), reason="signal")
            run.checkpoint = str(path)
        run.per_rank = world.gather(memory.peak_bytes) if world.enabled else None
        preempted = stop.signal == signal.SIGTERM
        run.finish("preempted" if preempted else "cancelled", seconds=time.time() - started)
        return EXIT_PREEMPTED if preempted else EXIT_INTERRUPTED

    # 9. Save: adapter (or full model) under a temporary name, then move it into place;
    #    run.json, then KAITO's sentinel last, so a directory with the sentinel is complete.
    full_state = world.full_model_state(model)  # FSDP: a collective, on every rank
    run.per_rank = world.gather(memory.peak_bytes) if world.enabled else None
    run.adapter_dir = str(output_dir)
    if world.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        staging = output_dir / ".final.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        files = _model.save_final(world.unwrap(model), tokenizer, method, staging, state_dict=full_state)
        for name in files:
            os.replace(staging / name, output_dir / name)
        staging.rmdir()
        log(f"saved {', '.join(files)} to {output_dir}")
        run.finish("succeeded", seconds=time.time() - started, files=files, extra={"model": model_ref, "weights": "random" if model_source.random else "pretrained", "trainableParams": trainable_params,
                                                                                               "peakBreakdownBytes": memory.peak_breakdown or None, "peakRssBytes": memory.peak_rss_bytes})
        (output_dir / SENTINEL).write_text(time.strftime("Fine-Tuning completed at %Y-%m-%d-%H-%M-%S"))
    world.barrier()  # the others wait for rank 0's files: torchrun ends the run when they exit
    return EXIT_OK


def _save_checkpoint(world, output_dir, step, model, optimizer, scheduler, state, method, keep):
    """Rank 0 writes checkpoint-N (FSDP: after every rank helped gather the full state); all wait for it."""
    from . import _checkpoint

    model_state = world.full_model_state(model)
    optimizer_state = world.optimizer_state(model, optimizer) if world.parallelism == "fsdp" else None
    path = output_dir / f"checkpoint-{step}"
    if world.is_main:
        path = _checkpoint.save(output_dir, step, world.unwrap(model), optimizer, scheduler, {**state, "parallelism": world.parallelism, "world_size": world.world_size},
                                method, keep, model_state=model_state, optimizer_state=optimizer_state)
    world.barrier()
    return path


def _describe_batch(per_device: int, world: int, accumulation: int) -> str:
    return f"effective batch {per_device * world * accumulation} = {per_device} per device x {world} ranks x {accumulation} gradient accumulation"


class Run:
    """What the `done` event and run.json report; filled in as the recipe goes."""

    def __init__(self):
        self.output_dir: Path | None = None
        self.device, self.method, self.predicted = "cpu", None, None
        self.steps, self.first_loss, self.last_loss, self.peak = 0, None, None, None
        self.throughput = Throughput()
        self.adapter_dir = self.checkpoint = None
        self.is_main, self.per_rank = True, None  # per_rank: each rank's measured peak (distributed runs)
        self._done = False

    def finish(self, state: str, seconds: float | None = None, error: str | None = None, files=None, extra=None) -> None:
        if self._done:
            return
        self._done = True
        summary = {
            "state": state, "steps": self.steps, "firstLoss": self.first_loss, "lastLoss": self.last_loss,
            # The planner's max_length worst case as passed in; the run's prediction (at the
            # longest batch trained) is the supervisor's, which knows the planner.
            "adapterDir": self.adapter_dir, "device": self.device, "predictedMaxLengthPeakBytes": self.predicted,
            "measuredPeakBytes": self.peak or None,
            "tokensPerSecond": self.throughput.tokens_per_second,
        }
        if self.per_rank is not None:
            summary["ranks"] = len(self.per_rank)
            if any(self.per_rank):  # no rank measured (--memory-every 0): unknown, not zero
                summary.update(measuredPeakBytesPerRank=self.per_rank, measuredPeakBytes=max(self.per_rank))
        if not self.is_main:
            # Rank 0 reports the run; another rank's end is visible through its exit code.
            return
        # A failed run writes run.json only into a directory that already exists (never creates
        # an output directory just to say it failed). Written before the `done` event: the
        # supervisor rewrites run.json (read, merge, rename) when `done` arrives, and a write of
        # ours landing between its read and its rename would be lost (seen in
        # bench/cpu-memory-accuracy.ts: rows without the trainer's section).
        try:
            if self.output_dir is not None and (state == "succeeded" or self.output_dir.is_dir()):
                record = {**summary, "method": self.method, "error": error, "files": files, "checkpoint": self.checkpoint, **(extra or {})}
                self.output_dir.mkdir(parents=True, exist_ok=True)
                path = self.output_dir / "run.json"
                # The supervisor's record (it has an `id`) keeps its own state: ours goes under
                # `trainer`, so a supervisor that died never has its record replaced by a
                # document that claims an end it did not see.
                try:
                    current = json.loads(path.read_text())
                except (OSError, ValueError):
                    current = None
                if isinstance(current, dict) and "id" in current:
                    record = {**current, "trainer": {**(current.get("trainer") or {}), **record}}
                tmp = self.output_dir / ".run.json.tmp"
                tmp.write_text(json.dumps(record, indent=1))
                os.replace(tmp, path)
        finally:
            emit("done", summary={**summary, **({"seconds": round(seconds, 3)} if seconds is not None else {})})


def _loss_implementations() -> tuple[str, ...]:
    from ._loss import IMPLEMENTATIONS

    return IMPLEMENTATIONS


def _is_out_of_memory(exc: BaseException) -> bool:
    # CUDA raises torch.OutOfMemoryError; the CPU allocator raises a plain RuntimeError.
    import torch

    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "DefaultCPUAllocator: can't allocate memory" in str(exc)


def _pick_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError("config", "--device cuda: no CUDA device is available (use --device cpu or auto)", "--device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _max_positions(model_ref: str) -> int | None:
    from transformers import AutoConfig

    try:
        return getattr(AutoConfig.from_pretrained(model_ref), "max_position_embeddings", None)
    except (OSError, ValueError):
        return None


def _autocast(device: str, train: dict):
    """CUDA mixed precision per TrainingArguments.bf16/fp16; CPU computes in float32."""
    import torch

    if device == "cuda" and (train.get("bf16") or train.get("fp16")):
        dtype = torch.bfloat16 if train.get("bf16") and torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _make_optimizer(train: dict, named_params):
    import torch

    name = str(train.get("optim") or "adamw_torch")
    # Like transformers' Trainer: no weight decay on biases and norms.
    decay = [p for n, p in named_params if "bias" not in n and "norm" not in n.lower()]
    no_decay = [p for n, p in named_params if "bias" in n or "norm" in n.lower()]
    groups = [g for g in ({"params": decay, "weight_decay": float(train.get("weight_decay") or 0.0)},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    lr = float(train["learning_rate"])
    adam = dict(lr=lr, betas=(float(train["adam_beta1"]), float(train["adam_beta2"])), eps=float(train["adam_epsilon"]))
    if name in ("adamw_torch", "adamw_hf"):
        return torch.optim.AdamW(groups, **adam)
    if name == "adamw_torch_fused":
        return torch.optim.AdamW(groups, fused=True, **adam)
    if name in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit"):
        import bitsandbytes as bnb

        cls = {"paged_adamw_8bit": bnb.optim.PagedAdamW8bit, "paged_adamw_32bit": bnb.optim.PagedAdamW32bit}.get(name, bnb.optim.AdamW8bit)
        return cls(groups, **adam)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, scale_parameter=False, relative_step=False)
    raise InputError("config", f"TrainingArguments.optim={name!r} is not supported here; use one of {', '.join(OPTIMIZERS)}", "TrainingArguments.optim")


def _make_scheduler(train: dict, optimizer, total_steps: int):
    from transformers import get_scheduler

    warmup = train.get("warmup_steps") or 0
    if train.get("warmup_ratio"):
        warmup = float(train["warmup_ratio"])
    # transformers 5: a warmup_steps value below 1 is a fraction of the run.
    warmup_steps = int(warmup * total_steps) if isinstance(warmup, float) and warmup < 1 else int(warmup)
    name = str(getattr(train["lr_scheduler_type"], "value", train["lr_scheduler_type"]))
    try:
        return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=max(total_steps, 1),
                             scheduler_specific_kwargs=train.get("lr_scheduler_kwargs") or None)
    except ValueError as exc:
        raise InputError("config", f"TrainingArguments.lr_scheduler_type={name!r}: {exc}", "TrainingArguments.lr_scheduler_type") from None


def _evaluate(model, examples, tokenizer, train, device, autocast, loss_impl: str = "full") -> float:
    from . import _data, _loss
    import torch

    size = int(train.get("per_device_eval_batch_size") or 8)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), size):
            batch = {k: v.to(device) for k, v in _data.collate(examples[i:i + size], tokenizer.pad_token_id).items()}
            with autocast:
                total += _loss.loss(model, batch, loss_impl).item()
            count += 1
    model.train()
    return total / max(count, 1)


if __name__ == "__main__":
    sys.exit(main())
