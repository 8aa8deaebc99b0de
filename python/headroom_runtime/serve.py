"""The inference worker behind `headroom serve` (docs/serve-protocol.md has the protocol).

    python -m headroom_runtime.serve --model M [--adapter NAME=DIR ...] [--adapters-dir DIR]
        [--device auto|cpu|cuda] [--max-batch N] [--measure-memory]

stdin: one JSON op per line (generate, cancel, stats); stdout: JSON lines only (ready, then
token/done/error per request, stats); logs go to stderr. A reader thread queues stdin lines;
the main thread runs batches of up to --max-batch requests for one model id and, between
decode steps, reads the queue, so stats and cancels are answered while a batch runs and new
requests wait for the next batch.
"""
from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections import deque

from ._serve_text import RequestError, parse_generate
from .events import InputError, log

_write_lock = threading.Lock()
_EOF = object()


def send(obj: dict) -> None:
    # ASCII with \u escapes: the pipe carries the same bytes whatever the locale's encoding is.
    line = json.dumps(obj, separators=(",", ":"))
    with _write_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the server is gone; nothing left to answer
            raise SystemExit(0) from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m headroom_runtime.serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="a model directory, a hub id, or default/tiny-phi3/tiny-llama")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR", help="a LoRA adapter served as model NAME")
    p.add_argument("--adapters-dir", help="serve every subdirectory holding adapter_config.json (KAITO's /mnt/adapter)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--max-batch", type=int, default=8, help="most requests decoded together (default 8)")
    p.add_argument("--measure-memory", action="store_true",
                   help="CPU: count every tensor of each forward pass for the peak (slower; for planner checks)")
    return p.parse_args(argv)


class Worker:
    def __init__(self, engine):
        self.engine = engine
        self.models = {engine.model_id, *engine.adapter_names}
        self.inbox: queue.Queue = queue.Queue()
        self.waiting: deque = deque()   # Sequences admitted, not yet in a batch
        self.running: list = []
        self.cancelled: set[str] = set()
        self.eof = False

    def reader(self, stream) -> None:
        """Queues stdin lines; bytes are UTF-8 (JSON's encoding) whatever the locale says."""
        for raw in stream:
            line = raw.decode("utf-8", errors="replace")
            if line.strip():
                self.inbox.put(line)
        self.inbox.put(_EOF)

    def handle(self, line) -> None:
        """One stdin line: admit a generate, note a cancel, answer stats."""
        from ._serve_engine import Sequence

        if line is _EOF:
            self.eof = True
            return
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            send({"type": "error", "kind": "input", "message": f"a line on stdin is not a JSON object ({exc}): {line.strip()[:200]}"})
            return
        op = obj.get("op")
        if op == "stats":
            send({"type": "stats", "memory": self.engine.memory(), "running": len(self.running), "waiting": len(self.waiting)})
            return
        if "id" not in obj or not isinstance(obj["id"], (str, int)):
            send({"type": "error", "kind": "input", "message": f"op {op!r} needs an id (a string); got {obj.get('id')!r}"})
            return
        rid = str(obj["id"])
        if op == "cancel":
            self.cancel(rid)
            return
        if op != "generate":
            send({"id": rid, "type": "error", "kind": "input", "message": f"unknown op {op!r}; use generate, cancel or stats"})
            return
        try:
            req = parse_generate(obj, self.models)
            seq = Sequence(req=req, prompt_ids=self.engine.encode(req), started=time.perf_counter())
        except RequestError as exc:
            send({"id": rid, "type": "error", "kind": "input", "message": str(exc)})
            return
        self.waiting.append(seq)

    def cancel(self, rid: str) -> None:
        for s in list(self.waiting):
            if s.req.id == rid:
                self.waiting.remove(s)
                send({"id": rid, "type": "error", "kind": "input", "message": f"request {rid} cancelled (op cancel)"})
                return
        if any(s.req.id == rid for s in self.running):
            self.cancelled.add(rid)

    def drain(self, block: bool) -> None:
        try:
            item = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
            while True:
                self.handle(item)
                item = self.inbox.get_nowait()
        except queue.Empty:
            pass

    def next_batch(self) -> list:
        """Up to --max-batch waiting requests for the model id of the oldest one, in arrival order."""
        model = self.waiting[0].req.model
        batch = [s for s in self.waiting if s.req.model == model][: self.engine.max_batch]
        for s in batch:
            self.waiting.remove(s)
        return batch

    def on_token(self, seq, delta: str) -> None:
        send({"id": seq.req.id, "type": "token", "text": delta})

    def on_done(self, seq) -> None:
        self.cancelled.discard(seq.req.id)
        if seq.finish == "cancelled":
            send({"id": seq.req.id, "type": "error", "kind": "input", "message": f"request {seq.req.id} cancelled (op cancel)"})
            return
        now = time.perf_counter()
        send({"id": seq.req.id, "type": "done", "text": self.engine.completion(seq), "finishReason": seq.finish,
              "usage": {"promptTokens": len(seq.prompt_ids), "completionTokens": len(seq.ids)},
              "ttftSeconds": round((seq.first_token_at or now) - seq.started, 6), "seconds": round(now - seq.started, 6),
              "batch": seq.batch_size})

    def poll(self) -> set[str]:
        self.drain(block=False)
        return self.cancelled

    def run(self) -> None:
        while True:
            self.drain(block=not self.waiting)
            if not self.waiting:
                if self.eof:
                    return
                continue
            self.running = self.next_batch()
            try:
                self.engine.run_batch(self.running, self.on_token, self.on_done, self.poll)
            except Exception as exc:  # a failed batch answers its requests and the worker keeps serving
                log(f"batch failed: {type(exc).__name__}: {exc}")
                for s in self.running:
                    if s.finish is None:
                        send({"id": s.req.id, "type": "error", "kind": "internal", "message": f"generation failed: {type(exc).__name__}: {exc}"})
            self.running = []


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.max_batch < 1:
        send({"type": "error", "kind": "input", "message": f"--max-batch {args.max_batch}: use 1 or more"})
        return 1
    try:
        from ._serve_engine import Engine, PeakMeter, discover_adapters

        adapters = discover_adapters(args.adapter, args.adapters_dir)
        if args.model in adapters:
            raise InputError("input", f"adapter name {args.model} is the base model's id; name the adapter differently", "--adapter")
        import torch

        if args.device == "cuda" and not torch.cuda.is_available():
            raise InputError("input", "--device cuda: no CUDA device is available (use --device cpu or auto)", "--device")
        device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        engine = Engine(args.model, args.model, adapters, device, args.max_batch)
        if args.measure_memory and device == "cpu":
            engine.meter = PeakMeter(engine)
    except InputError as exc:
        send({"type": "error", "kind": "input", "message": exc.message})
        return 1
    except Exception as exc:  # a bug or the machine (out of memory): say so on the protocol, trace on stderr
        import traceback

        traceback.print_exc()
        send({"type": "error", "kind": "internal", "message": f"the worker could not start: {type(exc).__name__}: {exc}"})
        return 1
    log(f"serving {args.model} on {device} ({str(engine.dtype).replace('torch.', '')}), adapters: {', '.join(adapters) or 'none'}")
    send({"type": "ready", "models": [{"id": engine.model_id, "kind": "base"}] + [{"id": n, "kind": "adapter"} for n in adapters],
          "device": device, "dtype": str(engine.dtype).replace("torch.", ""), "maxBatch": args.max_batch,
          "maxPositions": engine.max_positions, "memory": engine.memory()})
    worker = Worker(engine)
    threading.Thread(target=worker.reader, args=(sys.stdin.buffer,), daemon=True).start()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
