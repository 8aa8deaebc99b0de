"""Bad input: a clear `error` event naming the key or file:line, exit 1, and no output
directory that looks like a success."""
import json

import pytest

from conftest import check_schema, run_trainer, write_config

GOOD_ROW = {"messages": [{"role": "user", "content": "What does `len` do?"}, {"role": "assistant", "content": "Return the number of items in a container."}]}


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _case_missing_file(tmp):
    return ["--data", str(tmp / "nope.jsonl")], "data", "--data", "does not exist"


def _case_malformed_line(tmp):
    data = _jsonl(tmp / "bad.jsonl", [GOOD_ROW, GOOD_ROW, '{"messages": [oops', GOOD_ROW])
    return ["--data", str(data)], "data", "bad.jsonl:3", "malformed JSON line"


def _case_empty(tmp):
    (tmp / "empty.jsonl").write_text("\n\n")
    return ["--data", str(tmp / "empty.jsonl")], "data", str(tmp / "empty.jsonl"), "has no rows"


def _case_missing_columns(tmp):
    data = _jsonl(tmp / "cols.jsonl", [{"question": "q", "answer": "a"}])
    return ["--data", str(data)], "data", str(data), "expected `messages` (chat), `prompt` and `completion`, or `text`, found: answer, question"


def _case_unknown_model(tmp):
    return ["--model", str(tmp / "no-such-model")], "model", "--model", "does not exist"


def _case_unknown_config_key(tmp):
    config = write_config(tmp / "config.yaml", learnig_rate=0.1)
    return ["--config", str(config)], "config", "TrainingArguments.learnig_rate", "did you mean learning_rate?"


def _case_full_on_4bit(tmp):
    config = write_config(tmp / "config.yaml", quant={"load_in_4bit": True})
    return ["--config", str(config), "--method", "full"], "config", "QuantizationConfig.load_in_4bit", "cannot train a 4-bit"


CASES = [_case_missing_file, _case_malformed_line, _case_empty, _case_missing_columns, _case_unknown_model,
         _case_unknown_config_key, _case_full_on_4bit]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[6:] for c in CASES])
def test_bad_input(case, models, tmp_path):
    args, kind, path, message = case(tmp_path)
    out = tmp_path / "out"
    if "--model" not in args:
        args += ["--model", "tiny-llama"]
    result = run_trainer(*args, "--output", str(out))
    assert result.rc == 1, result.stderr[-3000:]
    check_schema(result.lines)
    errors = result.of("error")
    assert len(errors) == 1 and errors[0]["kind"] == kind and errors[0]["path"] == path, errors
    assert message in errors[0]["message"]
    assert result.done()["state"] == "failed" and result.done()["adapterDir"] is None
    assert not out.exists(), "a failed run must not create an output directory"
    assert "Traceback" not in result.stderr


def test_skip_bad_rows(models, tmp_path):
    data = _jsonl(tmp_path / "bad.jsonl", [GOOD_ROW, '{"messages": [oops', GOOD_ROW, "[1, 2]", GOOD_ROW])
    out = tmp_path / "out"
    config = write_config(tmp_path / "config.yaml", max_steps=2)
    result = run_trainer("--config", str(config), "--model", "tiny-llama", "--data", str(data), "--output", str(out), "--skip-bad-rows")
    assert result.rc == 0, result.stderr[-3000:]
    assert "skipped 2 malformed line(s)" in result.stderr and "bad.jsonl:2, bad.jsonl:4" in result.stderr
    assert result.of("start")[0]["examples"] == 3
    assert (out / "fine_tuning_completed.txt").exists()


def test_out_of_memory_sends_oom_and_exits_3(models, tmp_path):
    """A batch that cannot fit under a 4 GiB address-space limit: `oom` event, exit 3, no adapter."""
    import resource
    import subprocess
    import sys

    from conftest import ENV, REPO, Result

    data = _jsonl(tmp_path / "long.jsonl", [{"text": " ".join(f"word{i * 7 + j}" for j in range(600))} for i in range(128)])
    config = tmp_path / "config.yaml"
    config.write_text(
        "training_config:\n  ModelConfig: {torch_dtype: float32}\n"
        "  TrainingArguments: {per_device_train_batch_size: 128, max_length: 512, max_steps: 2, gradient_checkpointing: false}\n"
        "  DatasetConfig: {train_test_split: 1}\n"
    )
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    proc = subprocess.run([sys.executable, "-m", "headroom_runtime.train", "--config", str(config), "--data", str(data),
                           "--model", "tiny-phi3", "--output", str(out)], cwd=REPO, env=ENV, preexec_fn=limit,
                          capture_output=True, text=True, timeout=240)
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if not result.of("start"):
        pytest.skip(f"the runtime could not start under a 4 GiB address-space limit here: {proc.stderr[-300:]}")
    assert result.rc == 3, result.stderr[-3000:]
    check_schema(result.lines)
    [oom] = result.of("oom")
    assert oom["step"] == 1 and oom["seqLen"] == 512 and oom["batch"] == 128  # the first step holds the longest batch
    assert oom["tried"] == ["gc_collect", "retry"] and "allocate" in oom["message"]
    assert result.done()["state"] == "oom"
    assert not (out / "adapter_model.safetensors").exists() and not (out / "fine_tuning_completed.txt").exists()
