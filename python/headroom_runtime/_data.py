"""Dataset loading in KAITO's formats, tokenization, and the batch order.

Formats (TRL's, which KAITO's SFTTrainer consumes unchanged): conversational `messages`,
instruction `prompt`/`completion`, or language-modelling `text`. Files: jsonl, json, csv,
parquet (arrow via `datasets`), from a local path or an http(s)/file URL.
"""
from __future__ import annotations

import json
import math
import os
import random
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .assets import DEFAULT_DATASET
from .events import InputError, log

EXTENSIONS = ("csv", "json", "parquet", "arrow")  # KAITO's SUPPORTED_EXTENSIONS, matched as substrings
FORMATS = {"messages": ("messages",), "prompt_completion": ("prompt", "completion"), "text": ("text",)}
# Used only when the tokenizer has none: ChatML, the most common layout.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken


def resolve_source(cli_data: str | None, dataset_cfg: dict) -> tuple[str, str]:
    """(path or URL, the flag or config key it came from)."""
    if cli_data:
        return cli_data, "--data"
    if dataset_cfg.get("dataset_path"):
        given = str(dataset_cfg["dataset_path"])
        # KAITO joins dataset_path under /mnt (its data volume); locally a plain path works too.
        under_mnt = os.path.join("/mnt", given.strip("/"))
        if not _is_url(given) and not os.path.exists(given) and os.path.exists(under_mnt):
            given = under_mnt
        return given, "DatasetConfig.dataset_path"
    folder = os.environ.get("DATASET_FOLDER_PATH")
    if folder and os.path.isdir(folder):
        for root, _, files in sorted(os.walk(folder)):
            for name in sorted(files):
                if any(ext in name.lower() for ext in EXTENSIONS):
                    return os.path.join(root, name), "DATASET_FOLDER_PATH"
    return str(DEFAULT_DATASET), "default dataset"


def fetch(source: str, key: str, workdir: Path) -> Path:
    """A local path for `source`, downloading URLs into `workdir`."""
    if not _is_url(source):
        path = Path(source)
        if not path.is_file():
            raise InputError("data", f"dataset file {source} does not exist ({key})", key)
        return path
    name = Path(urllib.parse.urlparse(source).path).name or "dataset.jsonl"
    target = workdir / name
    try:
        with urllib.request.urlopen(source, timeout=60) as response, target.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (OSError, ValueError) as exc:
        raise InputError("data", f"cannot download dataset {source} ({key}): {exc}", key) from None
    log(f"downloaded {source} ({target.stat().st_size:,} bytes)")
    return target


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https", "file")


def read_rows(path: Path, extension: str | None, skip_bad_rows: bool) -> list[dict]:
    """Rows as dicts. A malformed JSONL line is an error naming `file:line` unless skip_bad_rows."""
    kind = extension or next((ext for ext in EXTENSIONS if ext in path.name.lower()), path.suffix.lstrip("."))
    if kind == "json":
        rows = _read_json(path, skip_bad_rows)
    elif kind in ("csv", "parquet", "arrow"):
        import datasets  # slow import; only for the columnar formats

        try:
            rows = datasets.load_dataset(kind, data_files=str(path), split="train").to_list()
        except Exception as exc:  # datasets raises many types for unreadable files
            raise InputError("data", f"cannot read {path} as {kind}: {exc}", str(path)) from None
    else:
        raise InputError("data", f"{path}: unsupported dataset type {kind!r}; use jsonl, json, csv or parquet, or set DatasetConfig.dataset_extension", "DatasetConfig.dataset_extension")
    if not rows:
        raise InputError("data", f"dataset {path} has no rows", str(path))
    return rows


def _read_json(path: Path, skip_bad_rows: bool) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if not path.name.lower().endswith(".jsonl") and text.lstrip()[:1] in ("[", "{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None  # several objects: JSON Lines
        if isinstance(document, list):
            return [row for row in document if isinstance(row, dict)]
        if isinstance(document, dict):
            lists = [v for v in document.values() if isinstance(v, list)]
            return lists[0] if len(lists) == 1 else [document]
    rows, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
        except ValueError as exc:
            where = f"{path.name}:{number}"
            if not skip_bad_rows:
                raise InputError("data", f"{where}: malformed JSON line ({exc}); fix it or pass --skip-bad-rows", where) from None
            bad.append(where)
            continue
        rows.append(row)
    if bad:
        log(f"skipped {len(bad)} malformed line(s) (--skip-bad-rows): {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''}")
    return rows


def detect_format(rows: list[dict], path: str) -> str:
    columns = set(rows[0])
    for name, needed in FORMATS.items():
        if all(c in columns for c in needed):
            return name
    raise InputError(
        "data",
        f"{path}: no usable columns; expected `messages` (chat), `prompt` and `completion`, or `text`, found: {', '.join(sorted(columns)) or 'none'}",
        path,
    )


def tokenize(rows, fmt: str, tokenizer, max_length: int, train: dict, path: str, skip_bad_rows: bool) -> list[Example]:
    """Tokenizes with the chat template, truncates to max_length (keep_start unless truncation_mode=keep_end)."""
    if fmt == "messages" and not tokenizer.chat_template:
        log("the tokenizer has no chat template; using ChatML (set ModelConfig.chat_template to choose)")
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    keep_end = train.get("truncation_mode") == "keep_end"
    completion_only = train.get("completion_only_loss") is not False  # TRL: None means yes for prompt/completion
    assistant_only = bool(train.get("assistant_only_loss"))
    examples, dropped, truncated = [], 0, 0
    for index, row in enumerate(rows):
        try:
            ids, labels = _encode(row, fmt, tokenizer, completion_only, assistant_only)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            where = f"{Path(path).name}: row {index + 1}"
            if not skip_bad_rows:
                raise InputError("data", f"{where}: cannot read a {fmt} row ({exc}); fix it or pass --skip-bad-rows", where) from None
            dropped += 1
            continue
        if len(ids) > max_length:
            truncated += 1
            ids, labels = (ids[-max_length:], labels[-max_length:]) if keep_end else (ids[:max_length], labels[:max_length])
        if len(ids) < 2 or all(label == -100 for label in labels[1:]):
            dropped += 1  # nothing to learn from (e.g. the prompt filled max_length)
            continue
        examples.append(Example(ids, labels))
    if truncated:
        log(f"truncated {truncated} example(s) to max_length={max_length} tokens")
    if dropped:
        log(f"dropped {dropped} example(s) with no trainable tokens or unreadable content")
    if not examples:
        raise InputError("data", f"dataset {path} has no usable examples after tokenization", path)
    return examples


def _encode(row, fmt, tokenizer, completion_only, assistant_only):
    eos = tokenizer.eos_token_id
    if fmt == "messages":
        messages = row["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages):
            raise ValueError("`messages` must be a list of {role, content} objects")
        ids = _ids(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False))
        labels = list(ids)
        if assistant_only:
            # Loss only on assistant turns: mask every token before each assistant reply's start.
            labels = [-100] * len(ids)
            for i, message in enumerate(messages):
                if message["role"] != "assistant":
                    continue
                start = len(_ids(tokenizer, tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)))
                end = len(_ids(tokenizer, tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)))
                labels[start:end] = ids[start:end]
        return ids, labels
    if fmt == "prompt_completion":
        prompt, completion = row["prompt"], row["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise ValueError("`prompt` and `completion` must be strings")
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = _ids(tokenizer, completion) + ([eos] if eos is not None else [])
        ids = prompt_ids + completion_ids
        labels = ([-100] * len(prompt_ids) if completion_only else list(prompt_ids)) + completion_ids
        return ids, labels
    text = row["text"]
    if not isinstance(text, str):
        raise ValueError("`text` must be a string")
    ids = tokenizer(text)["input_ids"]
    if eos is not None and (not ids or ids[-1] != eos):
        ids = ids + [eos]
    return ids, list(ids)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def split(examples: list[Example], train_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """KAITO's train_test_split: the fraction kept for training, the rest for eval."""
    if train_fraction >= 1:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = max(1, min(len(order) - 1, round(len(order) * train_fraction)))
    return [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]


class BatchOrder:
    """Which examples make micro-batch number m (0-based, counted across epochs).

    Deterministic from (seed, epoch), so a resumed run continues with exactly the batches
    an uninterrupted run would have seen. The run's first micro-batch holds the longest
    examples, so the step that needs the most memory runs first (fail fast). The first
    `lead` micro-batches (default 1) hold the longest `lead * batch_size` examples, longest
    first: the trainer passes two optimizer steps' worth so that step 2, the first step that
    runs with the optimizer state allocated (where a CPU run measures its steady-state peak,
    _memory.py), also holds the longest examples after step 1's.
    """

    def __init__(self, examples: list[Example], batch_size: int, shuffle: bool, seed: int, lead: int = 1):
        self.examples, self.batch_size, self.shuffle, self.seed = examples, batch_size, shuffle, seed
        self.lead = max(1, lead)
        self.per_epoch = math.ceil(len(examples) / batch_size)
        self._cached: tuple[int, list[int]] | None = None

    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            random.Random(self.seed + epoch).shuffle(order)
        if epoch == 0:
            longest = sorted(order, key=lambda i: -len(self.examples[i].input_ids))[: self.lead * self.batch_size]
            chosen = set(longest)
            order = longest + [i for i in order if i not in chosen]
        return order

    def batch(self, m: int) -> list[Example]:
        epoch, position = divmod(m, self.per_epoch)
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self._epoch_order(epoch))
        order = self._cached[1]
        return [self.examples[i] for i in order[position * self.batch_size:(position + 1) * self.batch_size]]


def collate(batch: list[Example], pad_id: int, pad_to_multiple_of: int | None = None) -> dict:
    """Right-pads to the longest example (rounded up to pad_to_multiple_of)."""
    import torch

    length = max(len(e.input_ids) for e in batch)
    if pad_to_multiple_of:
        length = math.ceil(length / pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_packed(batch: list[Example]) -> dict:
    """Padding-free packing (TRL's padding_free): the batch's examples end to end in one row.

    position_ids restart at 0 for every example and there is no attention_mask: transformers
    (masking_utils.find_packed_sequence_indices; flash attention's _is_packed_sequence) reads the
    restarts as example boundaries and builds attention that never crosses them (a
    block-diagonal causal mask for sdpa/eager, cu_seq_lens for flash_attention_2). Each
    example's first label becomes -100: after the shift it would be the target of the previous
    example's last token, a prediction across the boundary. An example's first label is never a
    target in a padded batch either, so the labelled tokens, and the mean loss over them, are the
    padded batch's.
    """
    import torch

    input_ids, labels, positions = [], [], []
    for example in batch:
        n = len(example.input_ids)
        input_ids += example.input_ids
        labels += [-100] + list(example.labels[1:])
        positions += range(n)
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
    }


def real_tokens(batch: dict) -> int:
    """Tokens that are not padding: the attention mask's ones, or every token of a packed row."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def download_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="headroom-data-"))
