#!/usr/bin/env python3
"""Builds examples/data/stdlib-docs.jsonl: question/answer chats from the Python standard
library's own docstrings (text written by the CPython authors, not by this project).

Each row is KAITO's conversational format:
  {"messages": [{"role": "user", "content": "What does `json.dumps` do?"},
                {"role": "assistant", "content": "<first paragraph of json.dumps.__doc__>"}]}

Deterministic for a given Python version: modules, names and question wording are chosen
by sorted order and a stable hash, never by randomness. Usage:
  python3 scripts/build-dataset.py [--out examples/data/stdlib-docs.jsonl] [--max-rows 1500]
"""
import argparse
import hashlib
import importlib
import inspect
import json
import re
import sys
import warnings
from pathlib import Path

# Pure-Python, side-effect-free modules whose docstrings are prose rather than one-liners.
MODULES = [
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "cmath",
    "codecs", "collections", "colorsys", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "email.utils", "enum", "filecmp", "fnmatch", "fractions", "functools",
    "getopt", "gettext", "glob", "graphlib", "gzip", "hashlib", "heapq", "hmac", "html",
    "http.client", "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "keyword",
    "linecache", "locale", "logging", "lzma", "mailbox", "math", "mimetypes", "operator", "os",
    "os.path", "pathlib", "pickle", "pkgutil", "platform", "plistlib", "pprint", "queue",
    "quopri", "random", "re", "reprlib", "sched", "secrets", "selectors", "shlex", "shutil",
    "signal", "smtplib", "socket", "sqlite3", "ssl", "statistics", "string", "struct",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "time", "timeit", "tokenize",
    "traceback", "types", "typing", "unicodedata", "urllib.parse", "urllib.request", "uuid",
    "warnings", "weakref", "xml.dom.minidom", "zipfile", "zlib",
]

QUESTIONS = [
    "What does `{name}` do?",
    "Explain `{name}` from the Python standard library.",
    "What is `{name}` for?",
    "Describe `{name}`.",
]


def first_paragraph(doc: str) -> str:
    """The docstring's first prose paragraph, whitespace collapsed."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(doc))
    for paragraph in paragraphs:
        text = " ".join(paragraph.split())
        # Skip signature lines that C functions put first, e.g. "dumps(obj, *, skipkeys=False)".
        if re.fullmatch(r"[\w.]+\(.*\)( -> .*)?", text):
            continue
        return text
    return ""


def documented_names(module):
    """(qualified name, object) for the module's public functions, classes and their methods."""
    public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in sorted(set(public)):
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj):
            continue
        if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
            continue
        yield f"{module.__name__}.{name}", obj
        if inspect.isclass(obj):
            for attr in sorted(vars(obj)):
                if attr.startswith("_"):
                    continue
                member = vars(obj)[attr]
                if inspect.isfunction(member) or inspect.ismethoddescriptor(member):
                    yield f"{module.__name__}.{name}.{attr}", member


def build_rows(max_rows: int):
    rows, seen_answers = [], set()
    for module_name in MODULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        for qualname, obj in documented_names(module):
            doc = inspect.getdoc(obj)
            if not doc:
                continue
            answer = first_paragraph(doc)
            # Too short says nothing; too long makes the tiny model's batches slow.
            if not (40 <= len(answer) <= 600) or answer in seen_answers:
                continue
            seen_answers.add(answer)
            pick = int(hashlib.sha256(qualname.encode()).hexdigest(), 16) % len(QUESTIONS)
            rows.append({"messages": [
                {"role": "user", "content": QUESTIONS[pick].format(name=qualname)},
                {"role": "assistant", "content": answer},
            ]})
    # Spread rows over all modules rather than keeping the first N modules alphabetically.
    rows.sort(key=lambda r: hashlib.sha256(r["messages"][0]["content"].encode()).hexdigest())
    return rows[:max_rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "examples/data/stdlib-docs.jsonl"))
    parser.add_argument("--max-rows", type=int, default=1500)
    args = parser.parse_args()
    rows = build_rows(args.max_rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows ({out.stat().st_size:,} bytes) to {out} with Python {sys.version.split()[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
