"""Serving throughput, side by side in one run on the same prompts (tiny default model, CPU):

  (a) transformers' own `model.generate(do_sample=False)`, called once per request, in turn;
  (b) the serving worker (python -m headroom_runtime.serve), one request at a time;
  (c) the same worker with 8 requests in flight (it decodes them as one batch).

Tokens/s = completion tokens (EOS included, as generate returns it) / wall-clock seconds from
the first request sent to the last answer, seen by the caller; the worker's start and model
load are outside the window, and each mode first serves one warm-up request. Every mode runs
`--rounds` times interleaved (a b c a b c ...) so drift on a shared machine hits all three,
and each mode's figure is its median round. Targets (issue 11): b/a >= 0.9, c/a >= 2.

    nice -n 10 .venv/bin/python bench/serve-throughput.py [--prompts 24] [--max-tokens 64] [--rounds 3]

Writes bench/results/serve-throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
THREADS = "1"  # one thread each: a shared 2-core machine; both sides get the same
os.environ.update(OMP_NUM_THREADS=THREADS, MKL_NUM_THREADS=THREADS, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def prompts_from_dataset(n: int) -> list[str]:
    rows = (json.loads(line) for line in (REPO / "examples/data/stdlib-docs.jsonl").open(encoding="utf-8"))
    return [next(m["content"] for m in row["messages"] if m["role"] == "user") for row, _ in zip(rows, range(n))]


class WorkerClient:
    def __init__(self, max_batch: int):
        env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
        self.proc = subprocess.Popen([sys.executable, "-m", "headroom_runtime.serve", "--model", "default", "--device", "cpu",
                                      "--max-batch", str(max_batch)], cwd=REPO, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.done: dict[str, dict] = {}
        self.cv = threading.Condition()
        self.ready = json.loads(self.proc.stdout.readline())
        assert self.ready["type"] == "ready", self.ready
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if event["type"] in ("done", "error"):
                with self.cv:
                    self.done[event["id"]] = event
                    self.cv.notify_all()

    def send(self, rid: str, prompt: str, max_tokens: int):
        self.proc.stdin.write(json.dumps({"id": rid, "op": "generate", "model": "default", "prompt": prompt,
                                          "max_tokens": max_tokens}) + "\n")
        self.proc.stdin.flush()

    def run(self, tag: str, prompts: list[str], max_tokens: int, in_flight: int) -> tuple[float, int, list[str]]:
        """Keeps `in_flight` requests outstanding until every prompt is answered."""
        ids = [f"{tag}-{i}" for i in range(len(prompts))]
        start = time.perf_counter()
        sent = 0
        with self.cv:
            while sent < min(in_flight, len(ids)):
                self.send(ids[sent], prompts[sent], max_tokens)
                sent += 1
            while not all(rid in self.done for rid in ids):
                self.cv.wait()
                outstanding = sum(1 for rid in ids[:sent] if rid not in self.done)
                while sent < len(ids) and outstanding < in_flight:
                    self.send(ids[sent], prompts[sent], max_tokens)
                    sent, outstanding = sent + 1, outstanding + 1
        seconds = time.perf_counter() - start
        events = [self.done[rid] for rid in ids]
        assert all(e["type"] == "done" for e in events), [e for e in events if e["type"] != "done"][:1]
        self.last_batches = [e["batch"] for e in events]
        return seconds, sum(e["usage"]["completionTokens"] for e in events), [e["text"] for e in events]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", default=str(REPO / "bench/results/serve-throughput.json"))
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from headroom_runtime import assets

    torch.set_num_threads(int(THREADS))
    prompts = prompts_from_dataset(args.prompts)
    path = assets.ensure("tiny-phi3")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def generate_all(items):
        texts, tokens = [], 0
        start = time.perf_counter()
        for p in items:
            ids = tok(p, return_tensors="pt")
            out = model.generate(**ids, max_new_tokens=args.max_tokens, do_sample=False)
            new = out[0, ids["input_ids"].shape[1]:]
            tokens += new.shape[0]
            texts.append(tok.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False))
        return time.perf_counter() - start, tokens, texts

    single, batched = WorkerClient(max_batch=1), WorkerClient(max_batch=args.concurrency)
    generate_all(prompts[:1])  # warm-ups
    single.run("warm", prompts[:1], args.max_tokens, 1)
    batched.run("warm", prompts[:1], args.max_tokens, 1)

    runs: dict[str, list[dict]] = {"a_generate": [], "b_worker_sequential": [], "c_worker_concurrent": []}
    reference = None
    for r in range(args.rounds):
        for mode, fn in (("a_generate", lambda: generate_all(prompts)),
                         ("b_worker_sequential", lambda: single.run(f"b{r}", prompts, args.max_tokens, 1)),
                         ("c_worker_concurrent", lambda: batched.run(f"c{r}", prompts, args.max_tokens, args.concurrency))):
            seconds, tokens, texts = fn()
            reference = reference or texts
            # Same greedy texts from all three, or the comparison would not be like for like.
            assert texts == reference, f"{mode} round {r}: greedy output differs from transformers' generate"
            run = {"seconds": round(seconds, 3), "tokens": tokens, "tokensPerSecond": round(tokens / seconds, 1)}
            if mode == "c_worker_concurrent":  # how full the worker's batches were (requests per batch, by request)
                run["meanBatch"] = round(statistics.mean(batched.last_batches), 2)
            runs[mode].append(run)
            print(f"round {r + 1} {mode:22s} {tokens} tokens in {seconds:6.2f}s = {tokens / seconds:7.1f} tok/s", flush=True)
    single.close()
    batched.close()

    median = {mode: statistics.median(x["tokensPerSecond"] for x in rs) for mode, rs in runs.items()}
    ratios = {"b_over_a": round(median["b_worker_sequential"] / median["a_generate"], 3),
              "c_over_a": round(median["c_worker_concurrent"] / median["a_generate"], 3)}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    result = {
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "torchThreads": int(THREADS), "torch": torch.__version__,
                    "transformers": __import__("transformers").__version__},
        "model": "tiny-phi3 (default)", "prompts": len(prompts), "maxTokens": args.max_tokens, "concurrency": args.concurrency,
        "rounds": args.rounds, "runs": runs, "medianTokensPerSecond": median, "ratios": ratios,
        "targets": {"b_over_a": 0.9, "c_over_a": 2.0},
        "meetsTargets": ratios["b_over_a"] >= 0.9 and ratios["c_over_a"] >= 2.0,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"median tok/s: generate {median['a_generate']:.1f}, worker 1-at-a-time {median['b_worker_sequential']:.1f} "
          f"({ratios['b_over_a']:.2f}x), worker {args.concurrency} concurrent {median['c_worker_concurrent']:.1f} "
          f"({ratios['c_over_a']:.2f}x); targets 0.9x and 2x: {'met' if result['meetsTargets'] else 'NOT met'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
