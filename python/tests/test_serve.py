"""The inference worker (python -m headroom_runtime.serve) through its real surface: a
subprocess speaking JSON lines, the tiny default model, real LoRA adapters saved by peft."""
from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ENV, REPO

from headroom_runtime import assets
from headroom_runtime._serve_text import CompletionText, RequestError, parse_generate

PROMPTS = ["def read_file(path):", "Return the absolute path", "os", "The json module encodes and decodes data as text"]


def make_adapter(directory: Path, seed: int) -> Path:
    """A LoRA on every linear layer of the tiny default with random nonzero B (peft's
    init_lora_weights=False), so it visibly changes the base model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(assets.ensure("tiny-phi3"), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(directory)
    return directory


class Worker:
    """A running worker: send ops, collect its events by request id."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "headroom_runtime.serve", *args], cwd=REPO, env=ENV, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.events: queue.Queue = queue.Queue()
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.next_event(timeout=120)

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            self.events.put(json.loads(line))  # stdout must be JSON lines only
        self.events.put(None)

    def next_event(self, timeout=60):
        event = self.events.get(timeout=timeout)
        assert event is not None, f"worker exited: rc={self.proc.wait()} stderr={self.proc.stderr.read()[-2000:]}"
        return event

    def send(self, *ops: dict):
        self.proc.stdin.write("".join(json.dumps(op) + "\n" for op in ops))
        self.proc.stdin.flush()

    def collect(self, ids, timeout=120) -> dict[str, list[dict]]:
        """Events per id until each id has its final done/error event."""
        pending, got = set(ids), {i: [] for i in ids}
        deadline = time.time() + timeout
        while pending:
            event = self.next_event(timeout=max(1, deadline - time.time()))
            if event.get("id") in got:
                got[event["id"]].append(event)
                if event["type"] in ("done", "error"):
                    pending.discard(event["id"])
        return got

    def generate(self, rid: str, **fields) -> dict:
        self.send({"id": rid, "op": "generate", "model": "default", **fields})
        return self.collect([rid])[rid][-1]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    kaito = root / "mnt-adapter"  # KAITO's layout: one subdirectory per adapter
    make_adapter(kaito / "kaito-one", seed=1)
    (kaito / "not-an-adapter").mkdir()
    return {"named": make_adapter(root / "named", seed=2), "kaito": kaito}


@pytest.fixture(scope="module")
def worker(adapters):
    w = Worker("--model", "default", "--device", "cpu", "--max-batch", "8",
               "--adapter", f"mine={adapters['named']}", "--adapters-dir", str(adapters["kaito"]))
    yield w
    w.close()


def test_ready_line_lists_base_and_adapters(worker):
    ready = worker.ready
    assert ready["type"] == "ready"
    assert ready["models"] == [{"id": "default", "kind": "base"}, {"id": "mine", "kind": "adapter"},
                               {"id": "kaito-one", "kind": "adapter"}]
    assert ready["device"] == "cpu" and ready["dtype"] == "float32"
    # The weights are resident: the tiny Phi-3 is ~3.9M float32 parameters (+ base copies the LoRA layers keep).
    assert ready["memory"]["allocatedBytes"] > 3_000_000 * 4
    assert ready["memory"]["peakAllocatedBytes"] >= ready["memory"]["allocatedBytes"]


def test_adapter_changes_greedy_output(worker):
    base = worker.generate("g-base", prompt=PROMPTS[0], max_tokens=12)
    mine = worker.generate("g-mine", prompt=PROMPTS[0], max_tokens=12, model="mine")
    kaito = worker.generate("g-kaito", prompt=PROMPTS[0], max_tokens=12, model="kaito-one")
    assert base["type"] == mine["type"] == kaito["type"] == "done"
    assert len({base["text"], mine["text"], kaito["text"]}) == 3
    # Switching back to the base after an adapter gives the base's output again.
    assert worker.generate("g-base2", prompt=PROMPTS[0], max_tokens=12)["text"] == base["text"]


def _reference_generate(prompts, max_new_tokens, adapter_dir=None):
    """transformers' own greedy generate, one prompt at a time."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assets.ensure("tiny-phi3")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    texts = []
    for p in prompts:
        ids = tok(p, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        texts.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True, clean_up_tokenization_spaces=False))
    return texts


@pytest.mark.parametrize("model", ["default", "mine"])
def test_greedy_alone_equals_batched_equals_transformers_generate(worker, adapters, model):
    n = 24
    alone = [worker.generate(f"alone-{model}-{i}", prompt=p, max_tokens=n, model=model) for i, p in enumerate(PROMPTS)]
    assert all(e["batch"] == 1 for e in alone)
    # A long request first: the four below arrive while it runs, wait, and then decode as one
    # left-padded batch of different prompt lengths.
    worker.send({"id": f"blocker-{model}", "op": "generate", "model": model, "prompt": "x", "max_tokens": 300, "stream": True})
    assert worker.next_event()["id"] == f"blocker-{model}"  # its first token: it is running
    ids = [f"batch-{model}-{i}" for i in range(len(PROMPTS))]
    worker.send(*({"id": rid, "op": "generate", "model": model, "prompt": p, "max_tokens": n} for rid, p in zip(ids, PROMPTS)))
    got = worker.collect([f"blocker-{model}", *ids])
    batched = [got[rid][-1] for rid in ids]
    assert [e["batch"] for e in batched] == [4] * 4
    assert [e["text"] for e in batched] == [e["text"] for e in alone]
    assert [e["usage"]["completionTokens"] for e in batched] == [e["usage"]["completionTokens"] for e in alone]
    reference = _reference_generate(PROMPTS, n, adapters["named"] if model == "mine" else None)
    assert [e["text"] for e in alone] == reference


def test_max_tokens_finishes_with_length_and_counts_usage(worker):
    done = worker.generate("len", prompt=PROMPTS[1], max_tokens=5)
    assert done["finishReason"] == "length"
    assert done["usage"]["completionTokens"] == 5
    assert done["usage"]["promptTokens"] > 0
    assert 0 < done["ttftSeconds"] <= done["seconds"]


def test_stop_string_cuts_the_text(worker):
    full = worker.generate("full", prompt=PROMPTS[0], max_tokens=20)["text"]
    # A stop string taken from the middle of the greedy output: the text ends right before it.
    stop = full[6:9]
    cut = full[: full.find(stop)]
    done = worker.generate("stopped", prompt=PROMPTS[0], max_tokens=20, stop=[stop, "never-appears"])
    assert done["finishReason"] == "stop"
    assert done["text"] == cut
    assert done["usage"]["completionTokens"] < 20
    streamed = worker.send({"id": "stopped-s", "op": "generate", "model": "default", "prompt": PROMPTS[0],
                            "max_tokens": 20, "stop": stop, "stream": True})
    events = worker.collect(["stopped-s"])["stopped-s"]
    assert "".join(e["text"] for e in events if e["type"] == "token") == cut == events[-1]["text"]


def test_streaming_deltas_concatenate_to_the_final_text(worker):
    worker.send({"id": "s1", "op": "generate", "model": "mine", "messages": [{"role": "user", "content": "What does os.path.join do?"}],
                 "max_tokens": 30, "stream": True})
    events = worker.collect(["s1"])["s1"]
    tokens, done = [e for e in events if e["type"] == "token"], events[-1]
    assert done["type"] == "done" and len(tokens) >= 2
    assert "".join(e["text"] for e in tokens) == done["text"]
    assert all(e["text"] for e in tokens)
    # Not streamed: the same request gives the same text in one piece.
    plain = worker.send({"id": "s2", "op": "generate", "model": "mine", "messages": [{"role": "user", "content": "What does os.path.join do?"}],
                         "max_tokens": 30})
    plain = worker.collect(["s2"])["s2"]
    assert len(plain) == 1 and plain[0]["text"] == done["text"]


def test_seed_makes_sampling_reproducible(worker):
    def sample(rid, seed):
        return worker.generate(rid, prompt=PROMPTS[2], max_tokens=20, temperature=1.0, top_p=0.95, seed=seed)["text"]

    first, again, other = sample("seed-a", 7), sample("seed-b", 7), sample("seed-c", 8)
    assert first == again
    assert first != other
    greedy = worker.generate("seed-g", prompt=PROMPTS[2], max_tokens=20)["text"]
    assert first != greedy


def test_bad_requests_get_errors_and_the_worker_keeps_serving(worker):
    worker.send({"id": "u1", "op": "generate", "model": "nope", "prompt": "hi"})
    worker.send({"id": "u2", "op": "generate", "model": "default", "prompt": "hi " * 600})
    worker.send({"id": "u3", "op": "generate", "model": "default", "prompt": "hi", "temperature": 5})
    worker.send({"id": "u4", "op": "generate", "model": "default"})
    worker.proc.stdin.write("not json\n")
    worker.send({"id": "u5", "op": "generate", "model": "default", "prompt": "hi", "max_tokens": 3})
    got = worker.collect(["u1", "u2", "u3", "u4", "u5"])
    assert got["u1"][-1]["kind"] == "input" and "unknown model 'nope'" in got["u1"][-1]["message"]
    assert "mine" in got["u1"][-1]["message"]  # names what it does serve
    assert "maximum context length is 512" in got["u2"][-1]["message"]
    assert "temperature=5" in got["u3"][-1]["message"]
    assert "prompt" in got["u4"][-1]["message"]
    assert got["u5"][-1]["type"] == "done"


def test_non_ascii_ids_and_prompts_round_trip(worker):
    done = worker.generate("grüße-✓", prompt="Grüße, wörld ✓ 日本", max_tokens=4)
    assert done["type"] == "done" and done["id"] == "grüße-✓"
    assert done["usage"]["promptTokens"] > len("Grüße, wörld ✓ 日本") // 2  # byte-level: several tokens a character
    assert all(line.isascii() for line in worker.raw)  # \u escapes on the pipe, whatever the locale


def test_fifty_requests_in_flight_all_answered(worker):
    ids = [f"many-{i}" for i in range(50)]
    models = ["default", "mine", "kaito-one"]
    worker.send(*({"id": rid, "op": "generate", "model": models[i % 3], "prompt": PROMPTS[i % 4], "max_tokens": 8,
                   "stream": i % 2 == 0} for i, rid in enumerate(ids)))
    worker.send({"op": "stats"})
    got = worker.collect(ids, timeout=300)
    finals = [got[rid][-1] for rid in ids]
    assert all(e["type"] == "done" for e in finals)
    assert max(e["batch"] for e in finals) > 1 and all(e["batch"] <= 8 for e in finals)
    # The same prompt and model give the same greedy text wherever its batch was.
    by_key: dict = {}
    for i, e in enumerate(finals):
        by_key.setdefault((i % 3, i % 4), set()).add(e["text"])
    assert all(len(texts) == 1 for texts in by_key.values())


def test_stats_reports_peak_memory_with_the_kv_cache(worker):
    worker.send({"op": "stats"})
    before = worker.next_event()
    while before["type"] != "stats":
        before = worker.next_event()
    assert before["running"] == 0 and before["waiting"] == 0
    worker.generate("mem", prompt=PROMPTS[3], max_tokens=200)
    worker.send({"op": "stats"})
    after = worker.next_event()
    # KV cache of one sequence: 2 (K and V) x 4 layers x 4 heads x 64 head_dim x 4 bytes per token
    # (docs/memory-model.md), for ~210 tokens = ~1.7 MB beyond the weights.
    per_token = 2 * 4 * 4 * 64 * 4
    assert after["memory"]["peakAllocatedBytes"] - after["memory"]["allocatedBytes"] >= per_token * 200


def test_cancel_ends_a_running_request(worker):
    worker.send({"id": "long", "op": "generate", "model": "default", "prompt": "x", "max_tokens": 400, "stream": True})
    first = worker.next_event()
    while first.get("id") != "long":
        first = worker.next_event()
    worker.send({"op": "cancel", "id": "long"})
    events = worker.collect(["long"])["long"]
    assert events[-1]["type"] == "error" and "cancelled" in events[-1]["message"]
    assert len(events) < 400


def test_every_stdout_line_parses_with_the_servers_schema(request):
    """The TypeScript side's zod schema for worker lines (src/runtime/serve-events.ts, owned by
    the server) accepts every line this module's worker wrote: ready, tokens, done, errors, stats."""
    schema = REPO / "src/runtime/serve-events.ts"
    if not schema.is_file() or shutil.which("node") is None:
        pytest.skip(f"{schema} (the server's side of the protocol) or node is missing")
    worker = request.getfixturevalue("worker")
    lines = [line for line in worker.raw if line.strip()]
    types = {json.loads(line)["type"] for line in lines}
    assert {"ready", "token", "done", "error", "stats"} <= types
    script = (
        "import { parseWorkerLine } from " + json.dumps(str(schema)) + ";\n"
        "import { readFileSync } from 'node:fs';\n"
        "const lines = readFileSync(0, 'utf8').split('\\n').filter((l) => l.trim());\n"
        "const bad = lines.map((l) => [l.slice(0, 200), parseWorkerLine(l)]).filter(([, r]) => r.kind !== 'event');\n"
        "console.log(JSON.stringify({ checked: lines.length, bad }));\n"
    )
    proc = subprocess.run(["node", "--import", "tsx", "-e", script], cwd=REPO, input="".join(lines),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["checked"] == len(lines)
    assert report["bad"] == [], json.dumps(report["bad"], indent=1)


def test_bad_adapter_dir_is_an_error_line_and_exit_1(tmp_path):
    missing = tmp_path / "nowhere"
    w = Worker("--model", "default", "--device", "cpu", "--adapter", f"broken={missing}")
    assert w.ready["type"] == "error" and w.ready["kind"] == "input"
    assert "broken" in w.ready["message"] and str(missing) in w.ready["message"]
    assert w.proc.wait(timeout=60) == 1
    assert "Traceback" not in w.proc.stderr.read()


def test_adapter_of_another_base_model_is_an_error_line_and_exit_1(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_pretrained(assets.ensure("tiny-llama"), dtype=torch.float32)
    get_peft_model(llama, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path / "llama-lora")
    w = Worker("--model", "default", "--device", "cpu", "--adapter", f"wrong={tmp_path / 'llama-lora'}")
    assert w.ready["type"] == "error" and w.ready["kind"] == "input"
    assert w.ready["message"].startswith(f"adapter wrong: cannot load {tmp_path / 'llama-lora'} onto default")
    assert w.proc.wait(timeout=60) == 1


def test_messages_need_a_chat_template(tmp_path):
    # A copy of the tiny Llama without its chat template.
    model = tmp_path / "no-template"
    shutil.copytree(assets.ensure("tiny-llama"), model)
    (model / "chat_template.jinja").unlink()
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    w = Worker("--model", str(model), "--device", "cpu")
    try:
        assert w.ready["models"] == [{"id": str(model), "kind": "base"}]
        w.send({"id": "m", "op": "generate", "model": str(model), "messages": [{"role": "user", "content": "hi"}]})
        w.send({"id": "p", "op": "generate", "model": str(model), "prompt": "hi", "max_tokens": 2})
        got = w.collect(["m", "p"])
        assert got["m"][-1]["type"] == "error" and "no chat template" in got["m"][-1]["message"]
        assert got["p"][-1]["type"] == "done"
    finally:
        w.close()


# --- the pure parts ------------------------------------------------------------------------

def test_completion_text_holds_back_a_possible_stop_and_incomplete_utf8():
    t = CompletionText(["END"])
    assert t.update("abc") == ("abc", False)
    assert t.update("abcE") == ("", False)       # "E" may start "END"
    assert t.update("abcEN") == ("", False)
    assert t.update("abcENx") == ("ENx", False)  # it did not
    assert t.update("abcENx\ufffd") == ("", False)  # half a character
    assert t.update("abcENxé") == ("é", False)
    assert t.update("abcENxéEND tail") == ("", True)
    assert t.text == "abcENxé" and t.finish() == ""


def test_parse_generate_rules():
    models = {"default", "a"}
    req = parse_generate({"id": 1, "model": "a", "prompt": "p", "stop": "x"}, models)
    assert (req.id, req.max_tokens, req.temperature, req.top_p, req.stop) == ("1", 16, 0.0, 1.0, ["x"])
    for bad, words in [({"prompt": "p", "messages": []}, "exactly one"), ({"prompt": "p", "max_tokens": 0}, "max_tokens=0"),
                       ({"prompt": "p", "top_p": 1.5}, "top_p"), ({"prompt": "p", "stop": [1]}, "stop"),
                       ({"prompt": "p", "stop": list("abcde")}, "at most 4"), ({"prompt": "p", "seed": "s"}, "seed"),
                       ({"messages": [{"role": "user"}]}, "messages[0]")]:
        with pytest.raises(RequestError, match=re.escape(words)):
            parse_generate({"id": "r", "model": "default", **bad}, models)


def test_measure_memory_counts_activations_beyond_weights_and_cache():
    """--measure-memory: the CPU peak of a forward pass (MemTracker) covers weights, KV cache and
    the activations, so it exceeds the weights + KV cache that the default counting sees."""
    def peak(*flags):
        w = Worker("--model", "default", "--device", "cpu", *flags)
        try:
            w.send({"id": "m", "op": "generate", "model": "default", "prompt": PROMPTS[3] * 8, "max_tokens": 4})
            done = w.collect(["m"])["m"][-1]
            w.send({"op": "stats"})
            stats = w.next_event()
            assert done["type"] == "done" and stats["type"] == "stats"
            return w.ready["memory"]["allocatedBytes"], stats["memory"]["peakAllocatedBytes"]
        finally:
            w.close()

    weights, plain = peak()
    _, measured = peak("--measure-memory")
    assert plain > weights  # the KV cache of the request
    # The prefill's activations (e.g. the MLP's gate_up output, 2 x 768 floats a token) come on top.
    assert measured > plain
