"""Dataset formats (messages, prompt/completion, text), file types and URLs, truncation, batch order."""
import http.server
import json
import threading

import pytest

from headroom_runtime import _data
from headroom_runtime.events import InputError


@pytest.fixture(scope="module")
def tokenizer(models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(models["tiny-phi3"])


def test_messages_use_the_chat_template_and_learn_every_token(tokenizer, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    rows = _data.read_rows(path, None, False)
    assert _data.detect_format(rows, str(path)) == "messages"
    [example] = _data.tokenize(rows, "messages", tokenizer, 512, {}, str(path), False)
    assert tokenizer.decode(example.input_ids) == "<|user|>\nhi<|end|>\n<|assistant|>\nhello<|end|>\n<|endoftext|>"
    assert example.labels == example.input_ids  # TRL's default: assistant_only_loss=False


def test_assistant_only_loss_masks_the_prompt(tokenizer, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    [example] = _data.tokenize(rows, "messages", tokenizer, 512, {"assistant_only_loss": True}, "x", False)
    learned = tokenizer.decode([t for t, l in zip(example.input_ids, example.labels) if l != -100])
    assert learned == "hello<|end|>\n<|endoftext|>"  # the reply, its end marker and the final eos


def test_prompt_completion_learns_only_the_completion(tokenizer, tmp_path):
    path = tmp_path / "pc.csv"
    path.write_text("prompt,completion\nWhat is 2+2?,Four.\n")
    rows = _data.read_rows(path, None, False)
    assert _data.detect_format(rows, str(path)) == "prompt_completion"
    [example] = _data.tokenize(rows, "prompt_completion", tokenizer, 512, {}, str(path), False)
    learned = [t for t, l in zip(example.input_ids, example.labels) if l != -100]
    assert tokenizer.decode(learned) == "Four.<|endoftext|>"


def test_text_parquet_and_truncation(tokenizer, tmp_path):
    import datasets

    path = tmp_path / "t.parquet"
    datasets.Dataset.from_list([{"text": "word " * 300}, {"text": "short"}]).to_parquet(str(path))
    rows = _data.read_rows(path, None, False)
    assert _data.detect_format(rows, str(path)) == "text"
    long, short = _data.tokenize(rows, "text", tokenizer, 64, {}, str(path), False)
    assert len(long.input_ids) == 64 and long.input_ids[0] == tokenizer("word")["input_ids"][0]  # keep_start
    kept_end = _data.tokenize(rows, "text", tokenizer, 64, {"truncation_mode": "keep_end"}, str(path), False)[0]
    assert kept_end.input_ids[-1] == tokenizer.eos_token_id


def test_json_array_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    assert _data.read_rows(path, None, False) == [{"text": "a"}, {"text": "b"}]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": \n')
    with pytest.raises(InputError) as err:
        _data.read_rows(path, None, False)
    assert err.value.path == "d.jsonl:3" and err.value.kind == "data"
    assert _data.read_rows(path, None, True) == [{"text": "a"}]


def test_dataset_from_http_url(tmp_path):
    (tmp_path / "served.jsonl").write_text('{"text": "over http"}\n')
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        work = tmp_path / "dl"
        work.mkdir()
        local = _data.fetch(f"http://127.0.0.1:{server.server_port}/served.jsonl", "--data", work)
        assert _data.read_rows(local, None, False) == [{"text": "over http"}]
        with pytest.raises(InputError) as err:
            _data.fetch(f"http://127.0.0.1:{server.server_port}/missing.jsonl", "--data", work)
        assert err.value.kind == "data" and "404" in err.value.message
    finally:
        server.shutdown()


def test_first_batch_is_the_longest_and_order_is_deterministic():
    examples = [_data.Example([1] * n, [1] * n) for n in (5, 50, 7, 40, 3, 9, 30)]
    order = _data.BatchOrder(examples, batch_size=2, shuffle=True, seed=1)
    assert sorted(len(e.input_ids) for e in order.batch(0)) == [40, 50]
    seen = [len(e.input_ids) for m in range(order.per_epoch) for e in order.batch(m)]
    assert sorted(seen) == sorted(len(e.input_ids) for e in examples)  # every example once per epoch
    again = _data.BatchOrder(examples, batch_size=2, shuffle=True, seed=1)
    assert [[len(e.input_ids) for e in again.batch(m)] for m in range(9)] == [[len(e.input_ids) for e in order.batch(m)] for m in range(9)]


def test_lead_puts_the_longest_examples_in_the_first_micro_batches():
    # lead=2: micro-batches 0 and 1 (the trainer's first two steps) hold the 4 longest, longest first.
    examples = [_data.Example([1] * n, [1] * n) for n in (5, 50, 7, 40, 3, 9, 30, 20)]
    order = _data.BatchOrder(examples, batch_size=2, shuffle=True, seed=1, lead=2)
    assert sorted(len(e.input_ids) for e in order.batch(0)) == [40, 50]
    assert sorted(len(e.input_ids) for e in order.batch(1)) == [20, 30]
    seen = [len(e.input_ids) for m in range(order.per_epoch) for e in order.batch(m)]
    assert sorted(seen) == sorted(len(e.input_ids) for e in examples)
